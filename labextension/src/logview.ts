// A job's log as a main-area document: follows the log (a Poll of
// scitex/api/jobs/{id}/log, appending what is new) while the job runs, and stops
// once the job has ended.

import { MainAreaWidget } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { ToolbarButton, refreshIcon, textEditorIcon } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { SciTeXAPI, isFinalState } from './api';
import { h, setText } from './dom';
import { describe } from './model';
import { MAX_MS, SciTeXSettings, ms } from './settings';

export class JobLogView extends Widget {
  constructor(
    private api: SciTeXAPI,
    private trans: TranslationBundle,
    settings: SciTeXSettings,
    readonly jobId: string,
    private onEnded: (id: string, state: string) => void
  ) {
    super();
    this.addClass('scitex-logdoc');
    this.status = h('p', {
      className: 'scitex-logdoc-status',
      role: 'status',
      'aria-live': 'polite'
    });
    this.text = h('pre', { className: 'scitex-log', tabindex: 0 });
    this.node.append(this.status, this.text);
    this.poll = new Poll({
      auto: false,
      factory: () => this.read(),
      frequency: { interval: ms(settings.values.logRefreshSeconds), backoff: false, max: MAX_MS },
      name: `scitex:log:${jobId}`,
      standby: 'when-hidden'
    });
    setText(this.status, trans.__('Reading the log of job %1…', jobId));
  }

  /** The job's state as the last read of the log said ('' before). */
  state = '';

  /** Read the log now (and go on following it while the job runs). */
  async reload(): Promise<void> {
    await this.read();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this.started) {
      this.started = true;
      void this.poll.start();
    }
  }

  private async read(): Promise<void> {
    const trans = this.trans;
    let state: string;
    try {
      const entry = await this.api.jobLog(this.jobId);
      this.showLog(entry.log);
      state = entry.state ?? '';
      this.text.dataset.kind = 'info';
      const where = entry.path ? ` (${entry.path})` : '';
      if (!entry.exists && !entry.log) {
        setText(
          this.status,
          trans.__('Job %1 is %2: no output yet%3.', this.jobId, state || '?', where)
        );
      } else if (isFinalState(state)) {
        setText(this.status, trans.__('Job %1 ended: %2%3.', this.jobId, state, where));
      } else {
        setText(
          this.status,
          trans.__('Job %1 is %2: following its log%3.', this.jobId, state || '?', where)
        );
      }
    } catch (err) {
      this.text.dataset.kind = 'error';
      setText(
        this.status,
        trans.__('Cannot read the log of job %1: %2', this.jobId, describe(err))
      );
      return;
    }
    this.state = state;
    if (isFinalState(state) && !this.poll.isDisposed) {
      // SLURM wrote the last output before it called the job ended: nothing follows.
      this.poll.dispose();
      this.onEnded(this.jobId, state);
    }
  }

  /** Append what is new; the whole text when the log was not just extended. */
  private showLog(log: string): void {
    const pre = this.text;
    const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    if (log.startsWith(this.shown) && this.shown !== '') {
      const added = log.slice(this.shown.length);
      if (added) {
        pre.append(document.createTextNode(added));
      }
    } else if (log !== this.shown) {
      pre.textContent = log;
    }
    this.shown = log;
    if (atEnd) {
      pre.scrollTop = pre.scrollHeight;
    }
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  private poll: Poll;
  private started = false;
  private shown = '';
  private status: HTMLElement;
  private text: HTMLElement;
}

/** The log of job ``id`` in a MainAreaWidget with a toolbar (reload). */
export function createLogDocument(
  api: SciTeXAPI,
  trans: TranslationBundle,
  settings: SciTeXSettings,
  id: string,
  onEnded: (id: string, state: string) => void
): MainAreaWidget<JobLogView> {
  const content = new JobLogView(api, trans, settings, id, onEnded);
  const widget = new MainAreaWidget({ content });
  // A region named after the job (MainAreaWidget names its content "main area content").
  content.node.setAttribute('aria-label', trans.__('Log of job %1', id));
  widget.id = `scitex-job-log-${id}`;
  widget.addClass('scitex-logdoc-widget');
  widget.title.label = trans.__('Job %1 log', id);
  widget.title.caption = trans.__('Output of compute job %1', id);
  widget.title.icon = textEditorIcon;
  widget.title.closable = true;
  widget.toolbar.addItem(
    'reload',
    new ToolbarButton({
      icon: refreshIcon,
      tooltip: trans.__('Read the log of job %1 again', id),
      onClick: () => void content.reload()
    })
  );
  return widget;
}
