// The "Projects" section: git status of each project, create, sync with one click.

import { ISignal, Signal } from '@lumino/signaling';

import { APIError, IProject, ISyncResult, SciTeXAPI } from './api';
import { clear, h, keepFocus, liveMessage, showMessage, uid } from './dom';
import { describe } from './model';
import { busy, section } from './section';

function statusWords(p: IProject): string {
  const parts: string[] = [];
  parts.push(p.branch ? `on ${p.branch}` : 'no branch checked out');
  if (p.ahead === null || p.behind === null) {
    parts.push(p.remote ? 'not yet synced' : 'local only');
  } else if (p.ahead === 0 && p.behind === 0) {
    parts.push('up to date');
  } else {
    parts.push(`${p.ahead} ahead, ${p.behind} behind`);
  }
  parts.push(p.dirty ? 'uncommitted changes' : 'no local changes');
  return parts.join(' · ');
}

function commits(n: number): string {
  return `${n} commit${n === 1 ? '' : 's'}`;
}

export class ProjectsSection {
  readonly node: HTMLElement;
  projects: IProject[] = [];

  constructor(private api: SciTeXAPI) {
    const refresh = h(
      'button',
      {
        type: 'button',
        className: 'scitex-button scitex-refresh',
        'aria-label': 'Refresh projects'
      },
      'Refresh'
    );
    refresh.addEventListener('click', () => void busy(refresh, () => this.refresh()));
    const { node, body } = section('Projects', refresh);
    this.node = node;

    const inputId = uid('new-project');
    this.nameInput = h('input', {
      id: inputId,
      type: 'text',
      className: 'scitex-input',
      autocomplete: 'off',
      spellcheck: 'false',
      required: true,
      placeholder: 'e.g. thesis-analysis'
    });
    this.createButton = h('button', { type: 'submit', className: 'scitex-button' }, 'Create');
    const form = h(
      'form',
      { className: 'scitex-form scitex-inline' },
      h('label', { for: inputId }, 'New project'),
      h('div', { className: 'scitex-row' }, this.nameInput, this.createButton)
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      void busy(this.createButton, () => this.create());
    });

    this.list = h('ul', { className: 'scitex-list', 'aria-label': 'Projects' });
    this.message = liveMessage();
    body.append(this.list, this.message, form);
  }

  /** Emitted when the list of projects changed (the jobs form offers them). */
  get changed(): ISignal<this, IProject[]> {
    return this._changed;
  }

  async refresh(): Promise<void> {
    try {
      this.projects = await this.api.projects();
      this.loadError = null;
    } catch (err) {
      this.loadError = describe(err);
    }
    this.render();
    this._changed.emit(this.projects);
  }

  private render(): void {
    keepFocus(this.list, () => this.renderList());
  }

  private renderList(): void {
    clear(this.list);
    if (this.loadError) {
      this.list.append(
        h('li', { className: 'scitex-message', 'data-kind': 'error' }, this.loadError)
      );
      return;
    }
    if (this.projects.length === 0) {
      this.list.append(
        h('li', { className: 'scitex-muted' }, 'No projects yet: create one below.')
      );
      return;
    }
    for (const p of this.projects) {
      const sync = h(
        'button',
        {
          type: 'button',
          className: 'scitex-button',
          'aria-label': `Sync project ${p.name}`,
          'data-focus-key': `sync:${p.name}`
        },
        'Sync'
      );
      sync.addEventListener('click', () => void busy(sync, () => this.sync(p.name)));
      const check = h(
        'button',
        {
          type: 'button',
          className: 'scitex-button scitex-secondary',
          'aria-label': `Check status of project ${p.name}`,
          'data-focus-key': `status:${p.name}`
        },
        'Status'
      );
      check.addEventListener('click', () => void busy(check, () => this.status(p.name)));
      this.list.append(
        h(
          'li',
          { className: 'scitex-item', 'data-dirty': p.dirty ? 'true' : 'false' },
          h(
            'div',
            { className: 'scitex-item-main' },
            h('strong', {}, p.name),
            h('span', { className: 'scitex-muted' }, statusWords(p))
          ),
          h('div', { className: 'scitex-item-tools' }, check, sync)
        )
      );
    }
  }

  private async create(): Promise<void> {
    const name = this.nameInput.value.trim();
    if (!name) {
      showMessage(this.message, 'error', 'Type a name for the new project.');
      this.nameInput.focus();
      return;
    }
    showMessage(this.message, 'info', `Creating ${name}…`);
    try {
      await this.api.createProject(name);
      this.nameInput.value = '';
      showMessage(this.message, 'success', `Project ${name} created.`);
      await this.refresh();
    } catch (err) {
      showMessage(this.message, 'error', describe(err));
    }
  }

  private async status(name: string): Promise<void> {
    try {
      const project = await this.api.projectStatus(name);
      this.replace(project);
      showMessage(this.message, 'info', `${name}: ${statusWords(project)}.`);
    } catch (err) {
      showMessage(this.message, 'error', describe(err));
    }
  }

  private async sync(name: string): Promise<void> {
    showMessage(this.message, 'info', `Syncing ${name}…`);
    try {
      const result: ISyncResult = await this.api.syncProject(name);
      this.replace(result);
      const done = [
        result.committed ? 'local changes committed' : '',
        `${commits(result.pulled ?? 0)} pulled`,
        `${commits(result.pushed ?? 0)} pushed`
      ].filter(Boolean);
      showMessage(this.message, 'success', `${name} synced: ${done.join(', ')}.`);
    } catch (err) {
      this.showSyncError(name, err);
      // A conflict leaves the project as it was, but other state may have changed.
      void this.refresh();
    }
  }

  /** The server's words, and on a conflict the files it names. */
  private showSyncError(name: string, err: unknown): void {
    const paths =
      err instanceof APIError && Array.isArray(err.body.conflicts)
        ? err.body.conflicts.filter((p): p is string => typeof p === 'string')
        : [];
    if (paths.length === 0) {
      showMessage(this.message, 'error', `Sync of ${name} failed: ${describe(err)}`);
      return;
    }
    showMessage(
      this.message,
      'error',
      h('p', {}, `Sync of ${name} stopped on a conflict: ${describe(err)}`),
      h('p', {}, 'Conflicting files:'),
      h('ul', { className: 'scitex-paths' }, ...paths.map(p => h('li', {}, h('code', {}, p))))
    );
  }

  private replace(project: IProject): void {
    const i = this.projects.findIndex(p => p.name === project.name);
    if (i >= 0) {
      this.projects[i] = project;
      this.render();
    }
  }

  private _changed = new Signal<this, IProject[]>(this);
  private loadError: string | null = null;
  private list: HTMLElement;
  private message: HTMLElement;
  private nameInput: HTMLInputElement;
  private createButton: HTMLButtonElement;
}
