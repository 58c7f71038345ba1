// SciTeX Hub's JupyterLab extension: a sidebar and a status-bar item over the
// notebook server's scitex/api endpoints (scitex_server_ext).

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { SciTeXAPI } from './api';
import { formatSpoken } from './format';
import { SciTeXModel } from './model';
import { SciTeXPanel } from './panel';
import { SciTeXStatus } from './status';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">
<g class="jp-icon3" fill="#616161"><path d="M8 1.5a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13zm0 1.5a5 5 0 1 1 0 10A5 5 0 0 1 8 3z"/>
<path d="M7.25 4.5h1.5v3.2l2.3 1.4-.78 1.28-3.02-1.84z"/></g></svg>`;

export const scitexIcon = new LabIcon({ name: 'scitex:panel', svgstr: ICON_SVG });

const COMMAND_OPEN = 'scitex:open-panel';

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@scitex/jupyterlab:plugin',
  description: 'SciTeX sidebar (session, storage, projects, jobs) and status-bar item.',
  autoStart: true,
  optional: [IStatusBar, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const api = new SciTeXAPI(app.serviceManager.serverSettings);
    const model = new SciTeXModel(api);
    const panel = new SciTeXPanel(model, api);
    panel.title.icon = scitexIcon;
    app.shell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, 'scitex-panel');

    app.commands.addCommand(COMMAND_OPEN, {
      label: 'Open the SciTeX Panel',
      caption: 'Session time left, storage, projects and jobs',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: COMMAND_OPEN, category: 'SciTeX' });

    model.warning.connect((_, left) => {
      Notification.warning(
        `Your session ends in ${formatSpoken(left)}. Save your work now: the job is stopped at its time limit.`,
        {
          autoClose: false,
          actions: [
            { label: 'Open the SciTeX panel', callback: () => app.shell.activateById(panel.id) }
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
    model.start();
  }
};

export default plugin;
