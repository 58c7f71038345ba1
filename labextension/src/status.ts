// The status-bar item: time left and storage use; opens the panel.

import { Widget } from '@lumino/widgets';

import { h, setText } from './dom';
import { formatClock, formatSpoken, percentUsed } from './format';
import { SciTeXModel } from './model';

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
    const trans = this.model.trans;
    const q = this.model.quota;
    const pct = q ? percentUsed(q.used_bytes, q.limit_bytes) : null;
    const shown: string[] = [];
    const said: string[] = [];
    if (left !== null) {
      shown.push(trans.__('%1 left', formatClock(left)));
      said.push(trans.__('%1 left', formatSpoken(left, trans)));
    }
    if (pct !== null) {
      shown.push(trans.__('%1% of storage', pct));
      said.push(trans.__('storage %1% used', pct));
    }
    setText(
      this.button,
      shown.length ? trans.__('SciTeX %1', shown.join(' · ')) : trans.__('SciTeX')
    );
    // The visible text ticks every second; the accessible name only per minute.
    const name = trans.__(
      'SciTeX: %1. Open the SciTeX panel.',
      said.length ? said.join(', ') : trans.__('session details')
    );
    if (this.button.getAttribute('aria-label') !== name) {
      this.button.setAttribute('aria-label', name);
      this.button.title = name;
    }
    this.button.dataset.level =
      left === 0 || (pct !== null && pct >= 100)
        ? 'over'
        : (left !== null && left <= this.model.warnSeconds) || (pct !== null && pct >= 90)
          ? 'warn'
          : 'ok';
  }

  private button: HTMLButtonElement;
}
