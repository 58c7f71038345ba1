// The "Session" section: job, node, profile and a live countdown, with a banner
// from 15 minutes before the end.

import { h, liveMessage, setText, showMessage, uid } from './dom';
import { formatClock, formatSpoken, formatTime } from './format';
import { Change, SciTeXModel, WARN_SECONDS } from './model';
import { section } from './section';

function endsAt(secondsLeft: number): string {
  const end = new Date(Date.now() + secondsLeft * 1000);
  return formatTime(end);
}

export class SessionSection {
  readonly node: HTMLElement;

  constructor(private model: SciTeXModel) {
    const refresh = h(
      'button',
      {
        type: 'button',
        className: 'scitex-button scitex-refresh',
        'aria-label': 'Refresh session'
      },
      'Refresh'
    );
    refresh.addEventListener('click', () => void this.model.refreshSession());
    const { node, body } = section('Session', refresh);
    this.node = node;

    this.banner = h('div', { className: 'scitex-banner', role: 'alert', hidden: true });
    const idClock = uid('clock');
    this.job = h('dd', {}, '…');
    this.nodeName = h('dd', {}, '…');
    this.profile = h('dd', {}, '…');
    // The clock changes every second: hidden from screen readers, which get the
    // minute-level words from the polite live region beside it instead.
    this.clock = h('span', { className: 'scitex-clock', id: idClock, 'aria-hidden': 'true' }, '…');
    this.spoken = h('span', {
      className: 'scitex-sr-only',
      'aria-live': 'polite',
      'aria-atomic': 'true'
    });
    this.end = h('span', { className: 'scitex-muted' });
    this.error = liveMessage();

    body.append(
      this.banner,
      h(
        'dl',
        { className: 'scitex-facts' },
        h('dt', {}, 'Job'),
        this.job,
        h('dt', {}, 'Node'),
        this.nodeName,
        h('dt', {}, 'Profile'),
        this.profile,
        h('dt', {}, 'Time left'),
        h('dd', { className: 'scitex-time-left' }, this.clock, this.spoken, ' ', this.end)
      ),
      this.error
    );
    model.changed.connect(this.onChange, this);
    this.render();
    this.renderClock();
  }

  private onChange(_: SciTeXModel, change: Change): void {
    if (change === 'session') {
      this.render();
    }
    this.renderClock();
  }

  private render(): void {
    const s = this.model.session;
    setText(this.job, s?.job_id || (s ? 'not a batch job' : '…'));
    setText(this.nodeName, s?.node || (s ? 'unknown' : '…'));
    setText(this.profile, s?.profile || (s ? 'unknown' : '…'));
    if (this.model.sessionError) {
      showMessage(this.error, 'error', this.model.sessionError);
    } else {
      showMessage(this.error, 'info');
    }
  }

  private renderClock(): void {
    const left = this.model.timeLeft();
    if (left === null) {
      setText(this.clock, this.model.session ? 'no end time known' : '…');
      setText(this.spoken, '');
      setText(this.end, '');
      this.setBanner('none');
      return;
    }
    setText(this.clock, formatClock(left));
    setText(this.spoken, `${formatSpoken(left)} left`);
    setText(this.end, `(ends at ${endsAt(left)})`);
    this.node.dataset.level = left === 0 ? 'over' : left <= WARN_SECONDS ? 'warn' : 'ok';
    this.setBanner(left === 0 ? 'ended' : left <= WARN_SECONDS ? 'warn' : 'none');
  }

  /** The banner's words change only when its state does: it is an alert region. */
  private setBanner(state: 'none' | 'warn' | 'ended'): void {
    if (state === this.bannerState) {
      return;
    }
    this.bannerState = state;
    const left = this.model.timeLeft() ?? 0;
    this.banner.hidden = state === 'none';
    this.banner.textContent =
      state === 'warn'
        ? `Your session ends in ${formatSpoken(left)} (at ${endsAt(left)}). Save your work now: the job is stopped at its time limit.`
        : state === 'ended'
          ? 'Your session has reached its time limit: the job may stop at any moment. Save your work now.'
          : '';
  }

  private banner: HTMLElement;
  private bannerState: 'none' | 'warn' | 'ended' = 'none';
  private job: HTMLElement;
  private nodeName: HTMLElement;
  private profile: HTMLElement;
  private clock: HTMLElement;
  private spoken: HTMLElement;
  private end: HTMLElement;
  private error: HTMLElement;
}
