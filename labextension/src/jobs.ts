// The "Jobs" section: the user's compute jobs (from the JobWatcher), each with its
// log (a main-area document) and Cancel; and a short form to submit a project's
// script with the session profile's defaults. The JupyterLab way to submit is the
// file browser's "Submit as SLURM Job" (submit.ts).

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { ToolbarButton, refreshIcon } from '@jupyterlab/ui-components';

import { IJobRequest, IProject, SciTeXAPI, isFinalState } from './api';
import { clear, field, h, keepFocus, liveMessage, showMessage } from './dom';
import { JobWatcher } from './jobwatch';
import { describe } from './model';
import { SectionWidget, busy, once } from './section';

/** What the section asks of the plugin: the log documents. */
export interface ILogDocuments {
  open(id: string): void;
  isOpen(id: string): boolean;
  /** The main-area element of the job's log (aria-controls), when open. */
  nodeId(id: string): string;
}

export class JobsSection extends SectionWidget {
  constructor(
    private api: SciTeXAPI,
    private trans: TranslationBundle,
    private watcher: JobWatcher,
    private logs: ILogDocuments
  ) {
    super(trans.__('Jobs'));
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: trans.__('Refresh jobs'),
        onClick: once(() => this.watcher.refresh())
      })
    );
    const body = this.body;

    this.project = h('select', { className: 'scitex-input jp-mod-styled', required: true });
    this.script = h('input', {
      type: 'text',
      className: 'scitex-input jp-mod-styled',
      required: true,
      placeholder: trans.__('e.g. run.sh'),
      autocomplete: 'off',
      spellcheck: 'false'
    });
    this.cpus = h('input', {
      type: 'number',
      className: 'scitex-input jp-mod-styled',
      min: 1,
      step: 1,
      inputmode: 'numeric'
    });
    this.memory = h('input', {
      type: 'text',
      className: 'scitex-input jp-mod-styled',
      autocomplete: 'off'
    });
    this.time = h('input', {
      type: 'text',
      className: 'scitex-input jp-mod-styled',
      placeholder: '01:00:00',
      autocomplete: 'off'
    });
    this.submitButton = h(
      'button',
      { type: 'submit', className: 'scitex-button jp-mod-styled' },
      trans.__('Submit job')
    );
    const form = h(
      'form',
      { className: 'scitex-form' },
      h(
        'p',
        { className: 'scitex-hint' },
        trans.__('Or right-click a script of a project in the file browser: Submit as SLURM Job.')
      ),
      field(trans.__('Project'), this.project),
      field(trans.__('Script'), this.script, trans.__('Path inside the project')),
      // Folded away: most jobs run with the site's defaults.
      h(
        'details',
        { className: 'scitex-details' },
        h('summary', {}, trans.__('Resources (optional)')),
        h(
          'fieldset',
          { className: 'scitex-fieldset' },
          h('legend', { className: 'scitex-sr-only' }, trans.__('Resources')),
          h('p', { className: 'scitex-hint' }, trans.__("Empty fields take the site's defaults.")),
          field(trans.__('CPUs'), this.cpus),
          field(trans.__('Memory'), this.memory, trans.__('e.g. 4GiB')),
          field(trans.__('Time limit'), this.time, trans.__('hours:minutes:seconds'))
        )
      ),
      this.submitButton
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      void busy(this.submitButton, () => this.submit());
    });

    this.list = h('ul', { className: 'scitex-list', 'aria-label': trans.__('Jobs') });
    this.message = liveMessage();
    body.append(this.list, this.message, form);
    this.setProjects([]);
    watcher.changed.connect(() => this.render(), this);
  }

  /** The projects offered in the form (kept selected across refreshes). */
  setProjects(projects: IProject[]): void {
    const selected = this.project.value;
    clear(this.project);
    if (projects.length === 0) {
      this.project.append(h('option', { value: '' }, this.trans.__('No projects')));
    }
    for (const p of projects) {
      this.project.append(h('option', { value: p.name, selected: p.name === selected }, p.name));
    }
  }

  /** Draw the list again (a log document opened or closed). */
  render(): void {
    keepFocus(this.list, () => this.renderList());
  }

  private renderList(): void {
    const trans = this.trans;
    clear(this.list);
    if (this.watcher.error) {
      this.list.append(
        h('li', { className: 'scitex-message', 'data-kind': 'error' }, this.watcher.error)
      );
      return;
    }
    if (this.watcher.jobs.length === 0) {
      this.list.append(h('li', { className: 'scitex-muted' }, trans.__('No jobs.')));
      return;
    }
    for (const job of this.watcher.jobs) {
      const what = [job.project, job.script].filter(Boolean).join(' / ');
      const state = [
        job.state ?? trans.__('unknown state'),
        job.reason ? `(${job.reason})` : '',
        job.node ? trans.__('on %1', job.node) : ''
      ]
        .filter(Boolean)
        .join(' ');
      const open = this.logs.isOpen(job.id);
      const log = h(
        'button',
        {
          type: 'button',
          className: 'scitex-button scitex-secondary jp-mod-styled',
          'aria-label': trans.__('Show log of job %1', job.id),
          // The log opens as a document in the main area.
          'aria-controls': open ? this.logs.nodeId(job.id) : undefined,
          'aria-expanded': open ? 'true' : 'false',
          'data-focus-key': `log:${job.id}`
        },
        trans.__('Log')
      );
      log.addEventListener('click', () => this.logs.open(job.id));
      let cancel: HTMLButtonElement | null = null;
      if (!isFinalState(job.state)) {
        const button = h(
          'button',
          {
            type: 'button',
            className: 'scitex-button scitex-danger jp-mod-styled',
            'aria-label': trans.__('Cancel job %1', job.id),
            'data-focus-key': `cancel:${job.id}`
          },
          trans.__('Cancel')
        );
        button.addEventListener('click', () => void busy(button, () => this.cancel(job.id)));
        cancel = button;
      }
      this.list.append(
        h(
          'li',
          { className: 'scitex-item', 'data-state': (job.state ?? '').toLowerCase() },
          h(
            'div',
            { className: 'scitex-item-main' },
            h('strong', {}, trans.__('Job %1', job.id)),
            what ? h('span', {}, what) : null,
            h('span', { className: 'scitex-muted' }, state)
          ),
          h('div', { className: 'scitex-item-tools' }, log, cancel)
        )
      );
    }
  }

  private async submit(): Promise<void> {
    const trans = this.trans;
    const project = this.project.value;
    const script = this.script.value.trim();
    if (!project || !script) {
      showMessage(
        this.message,
        'error',
        project
          ? trans.__('Type the script to run.')
          : trans.__('Create a project first: a job runs a script of a project.')
      );
      (project ? this.script : this.project).focus();
      return;
    }
    const resources: IJobRequest['resources'] = {};
    if (this.cpus.value.trim()) {
      resources.cpus = Number(this.cpus.value);
    }
    if (this.memory.value.trim()) {
      resources.memory = this.memory.value.trim();
    }
    if (this.time.value.trim()) {
      resources.runtime = this.time.value.trim();
    }
    showMessage(this.message, 'info', trans.__('Submitting %1 of %2…', script, project));
    try {
      const job = await this.api.submitJob({ project, script, resources });
      showMessage(
        this.message,
        'success',
        job ? trans.__('Job %1 submitted.', job.id) : trans.__('Job submitted.')
      );
      if (job) {
        this.watcher.expect(job.id);
      }
    } catch (err) {
      showMessage(this.message, 'error', trans.__('Submission failed: %1', describe(err)));
      return;
    }
    await this.watcher.refresh();
  }

  private async cancel(id: string): Promise<void> {
    const trans = this.trans;
    const answer = await showDialog({
      title: trans.__('Cancel job %1?', id),
      body: trans.__('The job is stopped; its output so far stays in its log.'),
      buttons: [
        Dialog.cancelButton({ label: trans.__('Keep running') }),
        Dialog.warnButton({ label: trans.__('Cancel job') })
      ]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await this.api.cancelJob(id);
      showMessage(this.message, 'success', trans.__('Job %1 cancelled.', id));
    } catch (err) {
      showMessage(
        this.message,
        'error',
        trans.__('Cancelling job %1 failed: %2', id, describe(err))
      );
    }
    await this.watcher.refresh();
  }

  private list: HTMLElement;
  private message: HTMLElement;
  private project: HTMLSelectElement;
  private script: HTMLInputElement;
  private cpus: HTMLInputElement;
  private memory: HTMLInputElement;
  private time: HTMLInputElement;
  private submitButton: HTMLButtonElement;
}
