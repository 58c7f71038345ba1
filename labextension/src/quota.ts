// The "Storage" section: used against limit, per-project sizes, when measured.

import { clear, h, liveMessage, setText, showMessage } from './dom';
import { formatAgo, formatBytes, formatTime, percentUsed } from './format';
import { Change, SciTeXModel } from './model';
import { section } from './section';

export class QuotaSection {
  readonly node: HTMLElement;

  constructor(private model: SciTeXModel) {
    const trans = model.trans;
    const refresh = h(
      'button',
      {
        type: 'button',
        className: 'scitex-button scitex-refresh',
        'aria-label': trans.__('Refresh storage usage')
      },
      trans.__('Refresh')
    );
    refresh.addEventListener('click', () => void this.model.refreshQuota());
    const { node, body } = section(trans.__('Storage'), refresh);
    this.node = node;
    this.summary = h('p', { className: 'scitex-quota-summary' }, '…');
    this.fill = h('div', { className: 'scitex-bar-fill' });
    this.bar = h(
      'div',
      {
        className: 'scitex-bar',
        role: 'meter',
        'aria-label': trans.__('Storage used'),
        'aria-valuemin': 0,
        'aria-valuemax': 100,
        hidden: true
      },
      this.fill
    );
    this.breakdown = h('div', { className: 'scitex-breakdown' });
    this.measured = h('p', { className: 'scitex-muted' });
    this.error = liveMessage();
    body.append(this.summary, this.bar, this.breakdown, this.measured, this.error);
    model.changed.connect(this.onChange, this);
    this.render();
  }

  private onChange(_: SciTeXModel, change: Change): void {
    if (change === 'quota') {
      this.render();
    }
  }

  private render(): void {
    const q = this.model.quota;
    const trans = this.model.trans;
    if (this.model.quotaError) {
      showMessage(this.error, 'error', this.model.quotaError);
    } else {
      showMessage(this.error, 'info');
    }
    if (!q) {
      return;
    }
    const pct = percentUsed(q.used_bytes, q.limit_bytes);
    // An incomplete measurement is a lower bound: never shown as the exact figure.
    const used = q.incomplete
      ? trans.__('at least %1', formatBytes(q.used_bytes))
      : formatBytes(q.used_bytes);
    if (q.limit_bytes === null || pct === null) {
      setText(this.summary, trans.__('%1 used (no limit set)', used));
      this.bar.hidden = true;
    } else {
      const words = trans.__('%1 of %2 used (%3%)', used, formatBytes(q.limit_bytes), pct);
      setText(this.summary, words);
      this.bar.hidden = false;
      this.bar.setAttribute('aria-valuenow', String(Math.min(100, pct)));
      this.bar.setAttribute('aria-valuetext', words);
      this.fill.style.width = `${Math.min(100, pct)}%`;
      this.node.dataset.level = pct >= 100 ? 'over' : pct >= 90 ? 'warn' : 'ok';
    }

    clear(this.breakdown);
    if (q.projects.length > 0) {
      const rows = q.projects.map(p =>
        h('tr', {}, h('th', { scope: 'row' }, p.name), h('td', {}, formatBytes(p.used_bytes)))
      );
      this.breakdown.append(
        h(
          'table',
          { className: 'scitex-table' },
          h('caption', {}, trans.__('By project')),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, trans.__('Project')),
              h('th', { scope: 'col' }, trans.__('Used'))
            )
          ),
          h('tbody', {}, ...rows)
        )
      );
    }

    clear(this.measured);
    const at = new Date(q.measured_at);
    if (!Number.isNaN(at.getTime())) {
      this.measured.append(
        `${trans.__('Measured')} `,
        h(
          'time',
          { datetime: q.measured_at, title: at.toLocaleString() },
          formatAgo(at, new Date(), trans)
        ),
        ` ${trans.__('at %1', formatTime(at))}`,
        q.source ? ` ${trans.__('(source: %1)', q.source)}` : '',
        q.incomplete
          ? ` ${trans.__('Incomplete: part of your data directory could not be read (a folder without read permission?), so the number is a lower bound.')}`
          : ''
      );
    }
  }

  private summary: HTMLElement;
  private bar: HTMLElement;
  private fill: HTMLElement;
  private breakdown: HTMLElement;
  private measured: HTMLElement;
  private error: HTMLElement;
}
