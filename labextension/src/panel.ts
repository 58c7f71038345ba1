// The SciTeX sidebar (a JupyterLab SidePanel): session, storage, projects, jobs.

import { TranslationBundle } from '@jupyterlab/translation';
import { SidePanel } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { Panel, Widget } from '@lumino/widgets';

import { SciTeXAPI } from './api';
import { h } from './dom';
import { ILogDocuments, JobsSection } from './jobs';
import { JobWatcher } from './jobwatch';
import { SciTeXModel } from './model';
import { ProjectsSection } from './projects';
import { QuotaSection } from './quota';
import { SessionSection } from './session';

export class SciTeXPanel extends SidePanel {
  constructor(
    model: SciTeXModel,
    api: SciTeXAPI,
    watcher: JobWatcher,
    logs: ILogDocuments,
    trans: TranslationBundle
  ) {
    // A plain Panel: the sections stay open (the default content is an accordion).
    super({ content: new Panel() });
    this.id = 'scitex-panel';
    this.addClass('scitex-panel');
    this.title.caption = trans.__('SciTeX: session, storage, projects, jobs');
    this.session = new SessionSection(model);
    this.quota = new QuotaSection(model);
    this.projects = new ProjectsSection(api, trans);
    this.jobs = new JobsSection(api, trans, watcher, logs);
    this.watcher = watcher;
    this.projects.changed.connect((_, list) => this.jobs.setProjects(list));
    // The whole panel is a landmark named like its tab.
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', trans.__('SciTeX'));
    this.header.addWidget(
      new Widget({ node: h('h2', { className: 'scitex-title' }, trans.__('SciTeX')) })
    );
    this.addWidget(new Widget({ node: this.session.node }));
    this.addWidget(new Widget({ node: this.quota.node }));
    this.addWidget(this.projects);
    this.addWidget(this.jobs);
  }

  /** A log document opened or closed: the Log buttons say so. */
  logsChanged(): void {
    this.jobs.render();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    // Projects and jobs are read when the panel opens (and after each action).
    void this.projects.refresh();
    void this.watcher.refresh();
  }

  private session: SessionSection;
  private quota: QuotaSection;
  private projects: ProjectsSection;
  private jobs: JobsSection;
  private watcher: JobWatcher;
}
