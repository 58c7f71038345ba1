// The status-bar item: time left and storage use; opens the panel.

import { Widget } from '@lumino/widgets';

import { h, setText } from './dom';
import { formatClock, formatSpoken, percentUsed } from './format';
import { SciTeXModel, WARN_SECONDS } from './model';

export class SciTeXStatus extends Widget {
  constructor(
    private model: SciTeXModel,
    open: () => void
  ) {
    super();
    this.addClass('scitex-status');
    this.button = h('button', { type: 'button', className: 'scitex-status-button' });
    this.button.addEventListener('click', open);
    this.node.append(this.button);
    model.changed.connect(this.render, this);
    this.render();
  }

  private render(): void {
    const left = this.model.timeLeft();
    const q = this.model.quota;
    const pct = q ? percentUsed(q.used_bytes, q.limit_bytes) : null;
    const shown: string[] = [];
    const said: string[] = [];
    if (left !== null) {
      shown.push(`${formatClock(left)} left`);
      said.push(`${formatSpoken(left)} left`);
    }
    if (pct !== null) {
      shown.push(`${pct}% of storage`);
      said.push(`storage ${pct}% used`);
    }
    setText(this.button, shown.length ? `SciTeX ${shown.join(' · ')}` : 'SciTeX');
    // The visible text ticks every second; the accessible name only per minute.
    const name = `SciTeX: ${said.length ? said.join(', ') : 'session details'}. Open the SciTeX panel.`;
    if (this.button.getAttribute('aria-label') !== name) {
      this.button.setAttribute('aria-label', name);
      this.button.title = name;
    }
    this.button.dataset.level =
      left === 0 || (pct !== null && pct >= 100)
        ? 'over'
        : (left !== null && left <= WARN_SECONDS) || (pct !== null && pct >= 90)
          ? 'warn'
          : 'ok';
  }

  private button: HTMLButtonElement;
}
