// SciTeX Hub's JupyterLab extension: a sidebar and a status-bar item over the
// notebook server's scitex/api endpoints (scitex_server_ext); compute jobs from the
// file browser ("Submit as SLURM Job"), their logs as main-area documents, and a
// notification when one ends.

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { IDocumentWidget } from '@jupyterlab/docregistry';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, TranslationBundle, nullTranslator } from '@jupyterlab/translation';
import { LabIcon, runIcon } from '@jupyterlab/ui-components';

import { IJob, IJobOptions, SciTeXAPI } from './api';
import { formatSpoken } from './format';
import { JobWatcher } from './jobwatch';
import { JobLogView, createLogDocument } from './logview';
import { SciTeXModel, describe } from './model';
import { SciTeXPanel } from './panel';
import { SciTeXSettings } from './settings';
import { SciTeXStatus } from './status';
import { IJobTarget, askResources, jobTarget } from './submit';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">
<g class="jp-icon3" fill="#616161"><path d="M8 1.5a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13zm0 1.5a5 5 0 1 1 0 10A5 5 0 0 1 8 3z"/>
<path d="M7.25 4.5h1.5v3.2l2.3 1.4-.78 1.28-3.02-1.84z"/></g></svg>`;

export const scitexIcon = new LabIcon({ name: 'scitex:panel', svgstr: ICON_SVG });

const PLUGIN_ID = '@scitex/jupyterlab:plugin';

namespace CommandIDs {
  export const open = 'scitex:open-panel';
  export const submit = 'scitex:submit-job';
  export const log = 'scitex:open-job-log';
}

/** The job options (the hub service's answer), read once and again after a failure. */
class OptionsCache {
  constructor(private api: SciTeXAPI) {}

  value: IJobOptions | null = null;

  get(): Promise<IJobOptions> {
    if (!this.pending) {
      this.pending = this.api.jobOptions().then(
        options => (this.value = options),
        err => {
          this.pending = null;
          throw err;
        }
      );
    }
    return this.pending;
  }

  private pending: Promise<IJobOptions> | null = null;
}

function endedType(state: string): Notification.TypeOptions {
  const word = state.toUpperCase().split(' ')[0];
  return word === 'COMPLETED' ? 'success' : word === 'CANCELLED' ? 'warning' : 'error';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'SciTeX sidebar (session, storage, projects, jobs), status-bar item, and compute jobs from the file browser.',
  autoStart: true,
  optional: [
    IStatusBar,
    ICommandPalette,
    ILayoutRestorer,
    ITranslator,
    ISettingRegistry,
    IDefaultFileBrowser
  ],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    translator: ITranslator | null,
    registry: ISettingRegistry | null,
    browser: IDefaultFileBrowser | null
  ) => {
    const trans: TranslationBundle = (translator ?? nullTranslator).load('scitex');
    const settings = new SciTeXSettings();
    const api = new SciTeXAPI(app.serviceManager.serverSettings, trans);
    const model = new SciTeXModel(api, settings, trans);
    const watcher = new JobWatcher(api, settings);
    const options = new OptionsCache(api);
    const logs = new Map<string, MainAreaWidget<JobLogView>>();

    const openLog = (id: string): void => {
      let widget = logs.get(id);
      if (!widget || widget.isDisposed) {
        widget = createLogDocument(api, trans, settings, id, () => void watcher.refresh());
        logs.set(id, widget);
        widget.disposed.connect(() => {
          logs.delete(id);
          panel.logsChanged();
        });
        app.shell.add(widget, 'main', { mode: 'split-bottom' });
        panel.logsChanged();
      }
      app.shell.activateById(widget.id);
    };

    const panel = new SciTeXPanel(
      model,
      api,
      watcher,
      {
        open: openLog,
        isOpen: id => logs.has(id),
        nodeId: id => logs.get(id)?.content.id || (logs.get(id)?.id ?? '')
      },
      trans
    );
    panel.title.icon = scitexIcon;
    app.shell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, 'scitex-panel');

    // -- which file a command acts on -------------------------------------------------

    /** The file: the one right-clicked in the file browser, else the current document, else the browser's selection. */
    const currentPath = (): string | null => {
      const inBrowser = app.contextMenuHitTest(node =>
        node.classList.contains('jp-DirListing-item')
      );
      const selected = browser?.selectedItems().next();
      const selection = selected && !selected.done ? selected.value : null;
      if (inBrowser && selection) {
        return selection.type === 'directory' ? null : selection.path;
      }
      const current = app.shell.currentWidget as IDocumentWidget | null;
      if (current && current.context && typeof current.context.path === 'string') {
        return current.context.path;
      }
      return selection && selection.type !== 'directory' ? selection.path : null;
    };

    const currentTarget = (args: { path?: unknown }): IJobTarget | null => {
      const path = typeof args.path === 'string' ? args.path : currentPath();
      return path ? jobTarget(path, options.value) : null;
    };

    // -- commands ----------------------------------------------------------------------

    app.commands.addCommand(CommandIDs.open, {
      label: trans.__('Open the SciTeX Panel'),
      caption: trans.__('Session time left, storage, projects and jobs'),
      execute: () => app.shell.activateById(panel.id)
    });

    app.commands.addCommand(CommandIDs.submit, {
      label: trans.__('Submit as SLURM Job…'),
      caption: trans.__(
        'Run this script of a project as a compute job, with resources of your profile'
      ),
      icon: runIcon,
      isVisible: args => currentTarget(args) !== null,
      execute: async args => {
        let opts: IJobOptions;
        try {
          opts = await options.get();
        } catch (err) {
          Notification.error(trans.__('Compute jobs are not available: %1', describe(err)));
          return;
        }
        const target = currentTarget(args);
        if (!target) {
          Notification.warning(
            trans.__(
              'Choose a script (%1) inside a project (%2/<project>/) to submit it as a job.',
              opts.script_suffixes.join(', '),
              opts.projects_path ?? 'projects'
            )
          );
          return;
        }
        if (opts.profiles.length === 0) {
          Notification.error(trans.__('Your institution offers no profile for compute jobs.'));
          return;
        }
        if (!model.session) {
          await model.refreshSession();
        }
        const request = await askResources(opts, target, model.session?.profile ?? '', trans);
        if (!request) {
          return;
        }
        let job: IJob | null;
        try {
          job = await api.submitJob(request);
        } catch (err) {
          Notification.error(trans.__('Submitting %1 failed: %2', target.script, describe(err)), {
            autoClose: false
          });
          return;
        }
        if (!job) {
          return;
        }
        const id = job.id;
        watcher.expect(id);
        Notification.success(
          trans.__('Job %1 submitted: %2 of %3.', id, target.script, target.project),
          {
            autoClose: 5000,
            actions: [{ label: trans.__('Open log'), callback: () => openLog(id) }]
          }
        );
        if (settings.values.openLogOnSubmit) {
          openLog(id);
        }
      }
    });

    app.commands.addCommand(CommandIDs.log, {
      label: args =>
        typeof args.id === 'string'
          ? trans.__('Open the Log of Job %1', args.id)
          : trans.__('Open a Job Log…'),
      caption: trans.__('Follow the output of a compute job in the main area'),
      execute: async args => {
        if (typeof args.id === 'string' && args.id) {
          openLog(args.id);
          return;
        }
        await watcher.refresh();
        const jobs = watcher.jobs;
        if (jobs.length === 0) {
          Notification.info(trans.__('You have no compute jobs.'));
          return;
        }
        const labels = jobs.map(j =>
          trans.__(
            'Job %1: %2 (%3)',
            j.id,
            [j.project, j.script].filter(Boolean).join(' / '),
            j.state ?? '?'
          )
        );
        const answer = await InputDialog.getItem({
          title: trans.__('Open the log of which job?'),
          items: labels,
          okLabel: trans.__('Open'),
          cancelLabel: trans.__('Cancel')
        });
        if (answer.button.accept && answer.value !== null) {
          openLog(jobs[labels.indexOf(answer.value)].id);
        }
      }
    });

    for (const command of [CommandIDs.open, CommandIDs.submit, CommandIDs.log]) {
      palette?.addItem({ command, category: trans.__('SciTeX') });
    }

    // -- notifications -----------------------------------------------------------------

    watcher.ended.connect((_, job) => {
      const state = job.state ?? 'UNKNOWN';
      const what = [job.project, job.script].filter(Boolean).join(' / ');
      const exit =
        job.exit_code && state !== 'COMPLETED'
          ? ` (${trans.__('exit code %1', job.exit_code)})`
          : '';
      Notification.emit(
        trans.__('Job %1 (%2) ended: %3%4', job.id, what || '?', state, exit),
        endedType(state),
        {
          autoClose: false,
          actions: [{ label: trans.__('Open log'), callback: () => openLog(job.id) }]
        }
      );
    });

    model.warning.connect((_, left) => {
      Notification.warning(
        trans.__(
          'Your session ends in %1. Save your work now: the job is stopped at its time limit.',
          formatSpoken(left, trans)
        ),
        {
          autoClose: false,
          actions: [
            {
              label: trans.__('Open the SciTeX panel'),
              callback: () => app.shell.activateById(panel.id)
            }
          ]
        }
      );
    });

    if (statusBar) {
      const item = new SciTeXStatus(model, () => app.shell.activateById(panel.id));
      statusBar.registerStatusItem('@scitex/jupyterlab:status', {
        item,
        align: 'left',
        rank: 50,
        isActive: () => true
      });
    }

    // Settings first (the polls' intervals), then start; without a registry, the defaults.
    const start = () => {
      model.start();
      watcher.start();
      // Which files are scripts of projects (the context menu needs it synchronously).
      options.get().catch(() => undefined);
    };
    if (registry) {
      registry
        .load(PLUGIN_ID)
        .then(loaded => settings.connect(loaded))
        .catch(err => console.warn(`SciTeX: settings not loaded (${describe(err)}); defaults`))
        .finally(start);
    } else {
      start();
    }
  }
};

export default plugin;
