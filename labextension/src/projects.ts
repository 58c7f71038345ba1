// The "Projects" section: git status of each project, create, sync with one click.

import { TranslationBundle } from '@jupyterlab/translation';
import { ToolbarButton, refreshIcon } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';

import { APIError, IProject, ISyncResult, SciTeXAPI } from './api';
import { clear, h, keepFocus, liveMessage, showMessage, uid } from './dom';
import { describe } from './model';
import { SectionWidget, busy, once } from './section';

function statusWords(p: IProject, trans: TranslationBundle): string {
  const parts: string[] = [];
  parts.push(p.branch ? trans.__('on %1', p.branch) : trans.__('no branch checked out'));
  if (p.ahead === null || p.behind === null) {
    parts.push(p.remote ? trans.__('not yet synced') : trans.__('local only'));
  } else if (p.ahead === 0 && p.behind === 0) {
    parts.push(trans.__('up to date'));
  } else {
    parts.push(trans.__('%1 ahead, %2 behind', p.ahead, p.behind));
  }
  parts.push(p.dirty ? trans.__('uncommitted changes') : trans.__('no local changes'));
  return parts.join(' · ');
}

export class ProjectsSection extends SectionWidget {
  projects: IProject[] = [];

  constructor(
    private api: SciTeXAPI,
    private trans: TranslationBundle
  ) {
    super(trans.__('Projects'));
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: trans.__('Refresh projects'),
        onClick: once(() => this.refresh())
      })
    );
    const body = this.body;

    const inputId = uid('new-project');
    this.nameInput = h('input', {
      id: inputId,
      type: 'text',
      className: 'scitex-input jp-mod-styled',
      autocomplete: 'off',
      spellcheck: 'false',
      required: true,
      placeholder: trans.__('e.g. thesis-analysis')
    });
    this.createButton = h(
      'button',
      { type: 'submit', className: 'scitex-button jp-mod-styled' },
      trans.__('Create')
    );
    const form = h(
      'form',
      { className: 'scitex-form scitex-inline' },
      h('label', { for: inputId }, trans.__('New project')),
      h('div', { className: 'scitex-row' }, this.nameInput, this.createButton)
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      void busy(this.createButton, () => this.create());
    });

    this.list = h('ul', { className: 'scitex-list', 'aria-label': trans.__('Projects') });
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
    const trans = this.trans;
    clear(this.list);
    if (this.loadError) {
      this.list.append(
        h('li', { className: 'scitex-message', 'data-kind': 'error' }, this.loadError)
      );
      return;
    }
    if (this.projects.length === 0) {
      this.list.append(
        h('li', { className: 'scitex-muted' }, trans.__('No projects yet: create one below.'))
      );
      return;
    }
    for (const p of this.projects) {
      const sync = h(
        'button',
        {
          type: 'button',
          className: 'scitex-button jp-mod-styled',
          'aria-label': trans.__('Sync project %1', p.name),
          'data-focus-key': `sync:${p.name}`
        },
        trans.__('Sync')
      );
      sync.addEventListener('click', () => void busy(sync, () => this.sync(p.name)));
      const check = h(
        'button',
        {
          type: 'button',
          className: 'scitex-button scitex-secondary jp-mod-styled',
          'aria-label': trans.__('Check status of project %1', p.name),
          'data-focus-key': `status:${p.name}`
        },
        trans.__('Status')
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
            h('span', { className: 'scitex-muted' }, statusWords(p, trans))
          ),
          h('div', { className: 'scitex-item-tools' }, check, sync)
        )
      );
    }
  }

  private async create(): Promise<void> {
    const name = this.nameInput.value.trim();
    if (!name) {
      showMessage(this.message, 'error', this.trans.__('Type a name for the new project.'));
      this.nameInput.focus();
      return;
    }
    showMessage(this.message, 'info', this.trans.__('Creating %1…', name));
    try {
      await this.api.createProject(name);
      this.nameInput.value = '';
      showMessage(this.message, 'success', this.trans.__('Project %1 created.', name));
      await this.refresh();
    } catch (err) {
      showMessage(this.message, 'error', describe(err));
    }
  }

  private async status(name: string): Promise<void> {
    try {
      const project = await this.api.projectStatus(name);
      this.replace(project);
      showMessage(
        this.message,
        'info',
        this.trans.__('%1: %2.', name, statusWords(project, this.trans))
      );
    } catch (err) {
      showMessage(this.message, 'error', describe(err));
    }
  }

  private async sync(name: string): Promise<void> {
    const trans = this.trans;
    showMessage(this.message, 'info', trans.__('Syncing %1…', name));
    try {
      const result: ISyncResult = await this.api.syncProject(name);
      this.replace(result);
      const done = [
        result.committed ? trans.__('local changes committed') : '',
        trans._n('%1 commit pulled', '%1 commits pulled', result.pulled ?? 0),
        trans._n('%1 commit pushed', '%1 commits pushed', result.pushed ?? 0)
      ].filter(Boolean);
      showMessage(this.message, 'success', trans.__('%1 synced: %2.', name, done.join(', ')));
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
    const trans = this.trans;
    if (paths.length === 0) {
      showMessage(this.message, 'error', trans.__('Sync of %1 failed: %2', name, describe(err)));
      return;
    }
    showMessage(
      this.message,
      'error',
      h('p', {}, trans.__('Sync of %1 stopped on a conflict: %2', name, describe(err))),
      h('p', {}, trans.__('Conflicting files:')),
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
