import { Toolbar } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';

import { h, uid } from './dom';

/** A titled region of the panel: <section aria-labelledby> with a heading and tools. */
export function section(
  title: string,
  ...tools: HTMLElement[]
): { node: HTMLElement; body: HTMLElement } {
  const id = uid('heading');
  const body = h('div', { className: 'scitex-section-body' });
  // JupyterLab's styled buttons (the theme's look), with the panel's colours.
  tools.forEach(tool => tool.classList.add('jp-mod-styled'));
  const node = h(
    'section',
    { className: 'scitex-section', 'aria-labelledby': id },
    h('div', { className: 'scitex-section-header' }, h('h3', { id }, title), ...tools),
    body
  );
  return { node, body };
}

/**
 * A titled region of the panel as a Lumino widget: the heading, then a JupyterLab
 * toolbar (ToolbarButtons need a widget parent), then the body.
 */
export class SectionWidget extends Panel {
  readonly body: HTMLElement;
  readonly toolbar: Toolbar;

  constructor(title: string) {
    super();
    const id = uid('heading');
    this.addClass('scitex-section');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-labelledby', id);
    const header = new Panel();
    header.addClass('scitex-section-header');
    header.addWidget(new Widget({ node: h('h3', { id }, title) }));
    this.toolbar = new Toolbar();
    this.toolbar.addClass('scitex-section-toolbar');
    header.addWidget(this.toolbar);
    this.addWidget(header);
    this.body = h('div', { className: 'scitex-section-body' });
    this.addWidget(new Widget({ node: this.body }));
  }
}

/**
 * Run an action from a button, once at a time. The button stays focusable
 * (aria-disabled rather than disabled, which would drop keyboard focus).
 */
export async function busy(button: HTMLButtonElement, action: () => Promise<void>): Promise<void> {
  if (button.getAttribute('aria-disabled') === 'true') {
    return;
  }
  button.setAttribute('aria-disabled', 'true');
  button.classList.add('scitex-busy');
  try {
    await action();
  } finally {
    button.removeAttribute('aria-disabled');
    button.classList.remove('scitex-busy');
  }
}

/** One guard against running an action twice at once, for toolbar buttons. */
export function once(action: () => Promise<void>): () => void {
  let running = false;
  return () => {
    if (running) {
      return;
    }
    running = true;
    void action().finally(() => {
      running = false;
    });
  };
}
