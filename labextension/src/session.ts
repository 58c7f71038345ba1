// The "Session" section: job, node, profile and a live countdown, with a banner
// from the walltime warning (settings) before the end.

import { h, liveMessage, setText, showMessage, uid } from './dom';
import { formatClock, formatSpoken, formatTime } from './format';
import { Change, SciTeXModel } from './model';
import { section } from './section';

function endsAt(secondsLeft: number): string {
  const end = new Date(Date.now() + secondsLeft * 1000);
  return formatTime(end);
}

export class SessionSection {
  readonly node: HTMLElement;

  constructor(private model: SciTeXModel) {
    const trans = model.trans;
    const refresh = h(
      'button',
      {
        type: 'button',
        className: 'scitex-button scitex-refresh',
        'aria-label': trans.__('Refresh session')
      },
      trans.__('Refresh')
    );
    refresh.addEventListener('click', () => void this.model.refreshSession());
    const { node, body } = section(trans.__('Session'), refresh);
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
        h('dt', {}, trans.__('Job')),
        this.job,
        h('dt', {}, trans.__('Node')),
        this.nodeName,
        h('dt', {}, trans.__('Profile')),
        this.profile,
        h('dt', {}, trans.__('Time left')),
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
    const trans = this.model.trans;
    setText(this.job, s?.job_id || (s ? trans.__('not a batch job') : '…'));
    setText(this.nodeName, s?.node || (s ? trans.__('unknown') : '…'));
    setText(this.profile, s?.profile || (s ? trans.__('unknown') : '…'));
    if (this.model.sessionError) {
      showMessage(this.error, 'error', this.model.sessionError);
    } else {
      showMessage(this.error, 'info');
    }
  }

  private renderClock(): void {
    const left = this.model.timeLeft();
    const trans = this.model.trans;
    const warn = this.model.warnSeconds;
    if (left === null) {
      setText(this.clock, this.model.session ? trans.__('no end time known') : '…');
      setText(this.spoken, '');
      setText(this.end, '');
      this.setBanner('none');
      return;
    }
    setText(this.clock, formatClock(left));
    setText(this.spoken, trans.__('%1 left', formatSpoken(left, trans)));
    setText(this.end, trans.__('(ends at %1)', endsAt(left)));
    this.node.dataset.level = left === 0 ? 'over' : left <= warn ? 'warn' : 'ok';
    this.setBanner(left === 0 ? 'ended' : left <= warn ? 'warn' : 'none');
  }

  /** The banner's words change only when its state does: it is an alert region. */
  private setBanner(state: 'none' | 'warn' | 'ended'): void {
    if (state === this.bannerState) {
      return;
    }
    this.bannerState = state;
    const left = this.model.timeLeft() ?? 0;
    const trans = this.model.trans;
    this.banner.hidden = state === 'none';
    this.banner.textContent =
      state === 'warn'
        ? trans.__(
            'Your session ends in %1 (at %2). Save your work now: the job is stopped at its time limit.',
            formatSpoken(left, trans),
            endsAt(left)
          )
        : state === 'ended'
          ? trans.__(
              'Your session has reached its time limit: the job may stop at any moment. Save your work now.'
            )
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
