// The "Jobs" section: submit a project's script as a compute job, follow its
// state and log, cancel it.

import { Dialog, showDialog } from '@jupyterlab/apputils';

import { IJob, IJobRequest, IProject, SciTeXAPI, isFinalState } from './api';
import { clear, h, keepFocus, liveMessage, showMessage, uid } from './dom';
import { describe } from './model';
import { busy, section } from './section';

function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement,
  hint?: string
): HTMLElement {
  const id = uid('field');
  control.id = id;
  let hintEl: HTMLElement | null = null;
  if (hint) {
    hintEl = h('span', { className: 'scitex-hint', id: `${id}-hint` }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { className: 'scitex-field' }, h('label', { for: id }, label), control, hintEl);
}

export class JobsSection {
  readonly node: HTMLElement;

  constructor(private api: SciTeXAPI) {
    const refresh = h(
      'button',
      { type: 'button', className: 'scitex-button scitex-refresh', 'aria-label': 'Refresh jobs' },
      'Refresh'
    );
    refresh.addEventListener('click', () => void busy(refresh, () => this.refresh()));
    const { node, body } = section('Jobs', refresh);
    this.node = node;

    this.project = h('select', { className: 'scitex-input', required: true });
    this.script = h('input', {
      type: 'text',
      className: 'scitex-input',
      required: true,
      placeholder: 'e.g. run.sh',
      autocomplete: 'off',
      spellcheck: 'false'
    });
    this.cpus = h('input', {
      type: 'number',
      className: 'scitex-input',
      min: 1,
      step: 1,
      inputmode: 'numeric'
    });
    this.memory = h('input', { type: 'text', className: 'scitex-input', autocomplete: 'off' });
    this.time = h('input', {
      type: 'text',
      className: 'scitex-input',
      placeholder: '01:00:00',
      autocomplete: 'off'
    });
    this.submitButton = h('button', { type: 'submit', className: 'scitex-button' }, 'Submit job');
    const form = h(
      'form',
      { className: 'scitex-form' },
      field('Project', this.project),
      field('Script', this.script, 'Path inside the project'),
      // Folded away: most jobs run with the site's defaults.
      h(
        'details',
        { className: 'scitex-details' },
        h('summary', {}, 'Resources (optional)'),
        h(
          'fieldset',
          { className: 'scitex-fieldset' },
          h('legend', { className: 'scitex-sr-only' }, 'Resources'),
          h('p', { className: 'scitex-hint' }, "Empty fields take the site's defaults."),
          field('CPUs', this.cpus),
          field('Memory', this.memory, 'e.g. 4GiB'),
          field('Time limit', this.time, 'hours:minutes:seconds')
        )
      ),
      this.submitButton
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      void busy(this.submitButton, () => this.submit());
    });

    this.list = h('ul', { className: 'scitex-list', 'aria-label': 'Jobs' });
    this.message = liveMessage();
    this.logTitle = h('h4', { id: uid('log-title') });
    this.logText = h('pre', {
      className: 'scitex-log',
      tabindex: 0,
      'aria-labelledby': this.logTitle.id
    });
    const refreshLog = h(
      'button',
      { type: 'button', className: 'scitex-button scitex-secondary' },
      'Refresh log'
    );
    refreshLog.addEventListener('click', () => void busy(refreshLog, () => this.loadLog()));
    const closeLog = h(
      'button',
      { type: 'button', className: 'scitex-button scitex-secondary' },
      'Close log'
    );
    closeLog.addEventListener('click', () => this.closeLog());
    this.logBox = h(
      'div',
      {
        className: 'scitex-logbox',
        id: uid('log'),
        role: 'region',
        'aria-labelledby': this.logTitle.id,
        hidden: true
      },
      h('div', { className: 'scitex-section-header' }, this.logTitle, refreshLog, closeLog),
      this.logText
    );
    body.append(this.list, this.message, this.logBox, form);
    this.setProjects([]);
  }

  /** The projects offered in the form (kept selected across refreshes). */
  setProjects(projects: IProject[]): void {
    const selected = this.project.value;
    clear(this.project);
    if (projects.length === 0) {
      this.project.append(h('option', { value: '' }, 'No projects'));
    }
    for (const p of projects) {
      this.project.append(h('option', { value: p.name, selected: p.name === selected }, p.name));
    }
  }

  /** Whether some listed job may still change state (worth polling). */
  get active(): boolean {
    return this.jobs.some(j => !isFinalState(j.state));
  }

  async refresh(): Promise<void> {
    try {
      this.jobs = await this.api.jobs();
      this.loadError = null;
    } catch (err) {
      this.loadError = describe(err);
    }
    keepFocus(this.list, () => this.render());
  }

  private render(): void {
    clear(this.list);
    if (this.loadError) {
      this.list.append(
        h('li', { className: 'scitex-message', 'data-kind': 'error' }, this.loadError)
      );
      return;
    }
    if (this.jobs.length === 0) {
      this.list.append(h('li', { className: 'scitex-muted' }, 'No jobs.'));
      return;
    }
    for (const job of this.jobs) {
      const what = [job.project, job.script].filter(Boolean).join(' / ');
      const state = [
        job.state ?? 'unknown state',
        job.reason ? `(${job.reason})` : '',
        job.node ? `on ${job.node}` : ''
      ]
        .filter(Boolean)
        .join(' ');
      const log = h(
        'button',
        {
          type: 'button',
          className: 'scitex-button scitex-secondary',
          'aria-label': `Show log of job ${job.id}`,
          'aria-controls': this.logBox.id,
          'aria-expanded': this.logJob === job.id && !this.logBox.hidden ? 'true' : 'false',
          'data-focus-key': `log:${job.id}`
        },
        'Log'
      );
      log.addEventListener('click', () => void busy(log, () => this.openLog(job.id)));
      let cancel: HTMLButtonElement | null = null;
      if (!isFinalState(job.state)) {
        const button = h(
          'button',
          {
            type: 'button',
            className: 'scitex-button scitex-danger',
            'aria-label': `Cancel job ${job.id}`,
            'data-focus-key': `cancel:${job.id}`
          },
          'Cancel'
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
            h('strong', {}, `Job ${job.id}`),
            what ? h('span', {}, what) : null,
            h('span', { className: 'scitex-muted' }, state)
          ),
          h('div', { className: 'scitex-item-tools' }, log, cancel)
        )
      );
    }
  }

  private async submit(): Promise<void> {
    const project = this.project.value;
    const script = this.script.value.trim();
    if (!project || !script) {
      showMessage(
        this.message,
        'error',
        project
          ? 'Type the script to run.'
          : 'Create a project first: a job runs a script of a project.'
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
    showMessage(this.message, 'info', `Submitting ${script} of ${project}…`);
    try {
      const job = await this.api.submitJob({ project, script, resources });
      showMessage(this.message, 'success', job ? `Job ${job.id} submitted.` : 'Job submitted.');
    } catch (err) {
      showMessage(this.message, 'error', `Submission failed: ${describe(err)}`);
      return;
    }
    await this.refresh();
  }

  private async cancel(id: string): Promise<void> {
    const answer = await showDialog({
      title: `Cancel job ${id}?`,
      body: 'The job is stopped; its output so far stays in its log.',
      buttons: [
        Dialog.cancelButton({ label: 'Keep running' }),
        Dialog.warnButton({ label: 'Cancel job' })
      ]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await this.api.cancelJob(id);
      showMessage(this.message, 'success', `Job ${id} cancelled.`);
    } catch (err) {
      showMessage(this.message, 'error', `Cancelling job ${id} failed: ${describe(err)}`);
    }
    await this.refresh();
  }

  private async openLog(id: string): Promise<void> {
    this.logJob = id;
    this.logTitle.textContent = `Log of job ${id}`;
    this.logBox.hidden = false;
    keepFocus(this.list, () => this.render());
    await this.loadLog();
  }

  private async loadLog(): Promise<void> {
    if (this.logJob === null) {
      return;
    }
    this.logText.dataset.kind = 'info';
    try {
      const text = await this.api.jobLog(this.logJob);
      this.logText.textContent = text || '(the log is empty)';
      this.logText.scrollTop = this.logText.scrollHeight;
    } catch (err) {
      this.logText.dataset.kind = 'error';
      this.logText.textContent = describe(err);
    }
  }

  private closeLog(): void {
    const id = this.logJob;
    this.logBox.hidden = true;
    this.logJob = null;
    keepFocus(this.list, () => this.render());
    // Back to the button that opened it, so keyboard users keep their place.
    this.list.querySelector<HTMLElement>(`[data-focus-key="log:${CSS.escape(id ?? '')}"]`)?.focus();
  }

  private jobs: IJob[] = [];
  private loadError: string | null = null;
  private logJob: string | null = null;
  private list: HTMLElement;
  private message: HTMLElement;
  private logBox: HTMLElement;
  private logTitle: HTMLElement;
  private logText: HTMLElement;
  private project: HTMLSelectElement;
  private script: HTMLInputElement;
  private cpus: HTMLInputElement;
  private memory: HTMLInputElement;
  private time: HTMLInputElement;
  private submitButton: HTMLButtonElement;
}
