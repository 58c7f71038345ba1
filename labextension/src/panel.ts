// The SciTeX sidebar: session, storage, projects, jobs.

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { SciTeXAPI } from './api';
import { h } from './dom';
import { JobsSection } from './jobs';
import { SciTeXModel } from './model';
import { ProjectsSection } from './projects';
import { QuotaSection } from './quota';
import { SessionSection } from './session';

/** Jobs are polled while the panel is shown and one of them may still change. */
const JOBS_POLL_MS = 30_000;

export class SciTeXPanel extends Widget {
  constructor(model: SciTeXModel, api: SciTeXAPI) {
    super();
    this.id = 'scitex-panel';
    this.addClass('scitex-panel');
    this.title.caption = 'SciTeX: session, storage, projects, jobs';
    this.session = new SessionSection(model);
    this.quota = new QuotaSection(model);
    this.projects = new ProjectsSection(api);
    this.jobs = new JobsSection(api);
    this.projects.changed.connect((_, list) => this.jobs.setProjects(list));
    // The whole panel is a landmark named like its tab.
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'SciTeX');
    this.node.append(
      h('h2', { className: 'scitex-title' }, 'SciTeX'),
      this.session.node,
      this.quota.node,
      this.projects.node,
      this.jobs.node
    );
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    // Projects and jobs are read when the panel opens (and after each action).
    void this.projects.refresh();
    void this.jobs.refresh();
    window.clearInterval(this.jobsTimer);
    this.jobsTimer = window.setInterval(() => {
      if (this.jobs.active) {
        void this.jobs.refresh();
      }
    }, JOBS_POLL_MS);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    window.clearInterval(this.jobsTimer);
  }

  dispose(): void {
    window.clearInterval(this.jobsTimer);
    super.dispose();
  }

  private session: SessionSection;
  private quota: QuotaSection;
  private projects: ProjectsSection;
  private jobs: JobsSection;
  private jobsTimer = 0;
}
