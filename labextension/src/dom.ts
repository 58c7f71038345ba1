// A minimal element builder: the panel is plain DOM inside Lumino widgets.

type Attrs = { [name: string]: string | number | boolean | undefined | null };
type Child = Node | string | null | undefined | false;

let counter = 0;

/** A document-unique id for label/aria-* references. */
export function uid(prefix: string): string {
  counter += 1;
  return `scitex-${prefix}-${counter}`;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name === 'className') {
      el.className = String(value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: HTMLElement, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

export function clear(el: HTMLElement): void {
  while (el.firstChild) {
    el.removeChild(el.firstChild);
  }
}

/**
 * Set text only when it changed: rewriting a live region with the same words
 * makes some screen readers announce it again.
 */
export function setText(el: HTMLElement, value: string): void {
  if (el.textContent !== value) {
    el.textContent = value;
  }
}

/** A message line that is announced politely when it changes. */
export function liveMessage(className = 'scitex-message'): HTMLElement {
  return h('div', { className, role: 'status', 'aria-live': 'polite' });
}

export type MessageKind = 'info' | 'error' | 'success' | 'warning';

export function showMessage(el: HTMLElement, kind: MessageKind, ...content: Child[]): void {
  el.dataset.kind = kind;
  clear(el);
  append(el, ...content);
}

/**
 * Re-render a container without losing keyboard focus: the element that had it
 * (marked with data-focus-key) gets it back in the new content.
 */
export function keepFocus(container: HTMLElement, render: () => void): void {
  const active = document.activeElement as HTMLElement | null;
  const key = active && container.contains(active) ? active.dataset.focusKey : undefined;
  render();
  if (key !== undefined) {
    const again = Array.from(container.querySelectorAll<HTMLElement>('[data-focus-key]')).find(
      el => el.dataset.focusKey === key
    );
    again?.focus();
  }
}

/**
 * A labelled form field: the control (a select in JupyterLab's wrapper), its label and
 * a hint the control is described by. ``hint`` is text, or an element the caller keeps
 * to update (the submit dialog's ranges).
 */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement,
  hint?: string | HTMLElement
): HTMLElement {
  const id = uid('field');
  control.id = id;
  let hintEl: HTMLElement | null = null;
  if (hint instanceof HTMLElement) {
    hintEl = hint;
  } else if (hint) {
    hintEl = h('span', { className: 'scitex-hint' }, hint);
  }
  if (hintEl) {
    hintEl.id = `${id}-hint`;
    control.setAttribute('aria-describedby', hintEl.id);
  }
  const wrapped =
    control instanceof HTMLSelectElement
      ? h('div', { className: 'jp-select-wrapper' }, control)
      : control;
  return h('div', { className: 'scitex-field' }, h('label', { for: id }, label), wrapped, hintEl);
}
