// The "Storage" section: used against limit, per-project sizes, when measured.

import { clear, h, liveMessage, setText, showMessage } from './dom';
import { formatAgo, formatBytes, formatTime, percentUsed } from './format';
import { Change, SciTeXModel } from './model';
import { section } from './section';

export class QuotaSection {
  readonly node: HTMLElement;

  constructor(private model: SciTeXModel) {
    const refresh = h(
      'button',
      {
        type: 'button',
        className: 'scitex-button scitex-refresh',
        'aria-label': 'Refresh storage usage'
      },
      'Refresh'
    );
    refresh.addEventListener('click', () => void this.model.refreshQuota());
    const { node, body } = section('Storage', refresh);
    this.node = node;
    this.summary = h('p', { className: 'scitex-quota-summary' }, '…');
    this.fill = h('div', { className: 'scitex-bar-fill' });
    this.bar = h(
      'div',
      {
        className: 'scitex-bar',
        role: 'meter',
        'aria-label': 'Storage used',
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
    if (this.model.quotaError) {
      showMessage(this.error, 'error', this.model.quotaError);
    } else {
      showMessage(this.error, 'info');
    }
    if (!q) {
      return;
    }
    const pct = percentUsed(q.used_bytes, q.limit_bytes);
    if (q.limit_bytes === null || pct === null) {
      setText(this.summary, `${formatBytes(q.used_bytes)} used (no limit set)`);
      this.bar.hidden = true;
    } else {
      const words = `${formatBytes(q.used_bytes)} of ${formatBytes(q.limit_bytes)} used (${pct}%)`;
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
          h('caption', {}, 'By project'),
          h(
            'thead',
            {},
            h('tr', {}, h('th', { scope: 'col' }, 'Project'), h('th', { scope: 'col' }, 'Used'))
          ),
          h('tbody', {}, ...rows)
        )
      );
    }

    clear(this.measured);
    const at = new Date(q.measured_at);
    if (!Number.isNaN(at.getTime())) {
      this.measured.append(
        'Measured ',
        h(
          'time',
          { datetime: q.measured_at, title: at.toLocaleString() },
          formatAgo(at, new Date())
        ),
        ` at ${formatTime(at)}`,
        q.source ? ` (source: ${q.source})` : ''
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
