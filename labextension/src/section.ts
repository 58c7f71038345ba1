import { h, uid } from './dom';

/** A titled region of the panel: <section aria-labelledby> with a heading and tools. */
export function section(
  title: string,
  ...tools: HTMLElement[]
): { node: HTMLElement; body: HTMLElement } {
  const id = uid('heading');
  const body = h('div', { className: 'scitex-section-body' });
  const node = h(
    'section',
    { className: 'scitex-section', 'aria-labelledby': id },
    h('div', { className: 'scitex-section-header' }, h('h3', { id }, title), ...tools),
    body
  );
  return { node, body };
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
