// "Submit as SLURM Job": which project and script a file is, and the dialog of
// resources, prefilled from the session's profile and limited to what the user's
// profiles allow (scitex/api/jobs/options, the hub service's answer).

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { IJobOptions, IJobProfile, IJobRequest, IRange } from './api';
import { clear, field, h } from './dom';

/** A file of a project, as the jobs API names it. */
export interface IJobTarget {
  project: string;
  /** Relative to the project. */
  script: string;
  /** As the file browser names it. */
  path: string;
}

const DEFAULT_SUFFIXES = ['.sh', '.py'];

/**
 * The project and script of a file browser path, or null when the file is not a
 * script inside a project (``<projects_path>/<project>/<script>``).
 */
export function jobTarget(path: string, options: IJobOptions | null): IJobTarget | null {
  const base = options ? options.projects_path : 'projects';
  if (base === null || !path) {
    return null;
  }
  const parts = path.split('/').filter(p => p !== '');
  const prefix = base.split('/').filter(p => p !== '');
  if (parts.length < prefix.length + 2 || prefix.some((p, i) => parts[i] !== p)) {
    return null;
  }
  const [project, ...rest] = parts.slice(prefix.length);
  const script = rest.join('/');
  const suffixes = options?.script_suffixes?.length ? options.script_suffixes : DEFAULT_SUFFIXES;
  if (project.startsWith('.') || !suffixes.some(s => script.endsWith(s))) {
    return null;
  }
  return { project, script, path: parts.join('/') };
}

/** The profile to preselect: the session's when allowed, else the site's default. */
export function preselectedProfile(options: IJobOptions, sessionProfile: string): IJobProfile {
  const named = (name: string | null) => options.profiles.find(p => p.name === name);
  return named(sessionProfile) ?? named(options.default_profile) ?? options.profiles[0];
}

function rangeHint<T extends string | number>(range: IRange<T>, trans: TranslationBundle): string {
  return range.min === range.max
    ? trans.__('fixed at %1', range.max)
    : trans.__('from %1 to %2', range.min, range.max);
}

/** The dialog's body: profile, partition, CPUs, memory, time limit, GPUs. */
export class SubmitJobBody extends Widget implements Dialog.IBodyWidget<IJobRequest['resources']> {
  constructor(
    private options: IJobOptions,
    target: IJobTarget,
    sessionProfile: string,
    private trans: TranslationBundle
  ) {
    super();
    this.addClass('scitex-submit');
    const intro = h(
      'p',
      {},
      trans.__('Run %1 of project %2 as a SLURM batch job.', target.script, target.project)
    );
    this.profile = h('select', { className: 'jp-mod-styled', name: 'profile' });
    for (const p of options.profiles) {
      this.profile.append(h('option', { value: p.name }, p.display_name || p.name));
    }
    this.profileHint = h('span', { className: 'scitex-hint' });
    this.partition = h('select', { className: 'jp-mod-styled', name: 'partition' });
    this.cpus = h('input', { type: 'number', className: 'jp-mod-styled', name: 'cpus', step: 1 });
    this.memory = h('input', {
      type: 'text',
      className: 'jp-mod-styled',
      name: 'memory',
      autocomplete: 'off',
      spellcheck: 'false'
    });
    this.runtime = h('input', {
      type: 'text',
      className: 'jp-mod-styled',
      name: 'runtime',
      autocomplete: 'off',
      spellcheck: 'false'
    });
    this.gpus = h('input', { type: 'number', className: 'jp-mod-styled', name: 'gpus', step: 1 });
    this.hints = {
      partition: h('span', { className: 'scitex-hint' }),
      cpus: h('span', { className: 'scitex-hint' }),
      memory: h('span', { className: 'scitex-hint' }),
      runtime: h('span', { className: 'scitex-hint' }),
      gpus: h('span', { className: 'scitex-hint' })
    };
    this.gpuField = field(trans.__('GPUs'), this.gpus, this.hints.gpus);
    this.node.append(
      intro,
      field(trans.__('Profile'), this.profile, this.profileHint),
      field(trans.__('Partition'), this.partition, this.hints.partition),
      field(trans.__('CPUs'), this.cpus, this.hints.cpus),
      field(trans.__('Memory'), this.memory, this.hints.memory),
      field(trans.__('Time limit'), this.runtime, this.hints.runtime),
      this.gpuField
    );
    this.profile.addEventListener('change', () => this.fill(this.selected()));
    const first = preselectedProfile(options, sessionProfile);
    this.profile.value = first.name;
    this.fill(first);
  }

  getValue(): IJobRequest['resources'] {
    const profile = this.selected();
    const resources: IJobRequest['resources'] = {
      profile: profile.name,
      partition: this.partition.value,
      cpus: Number(this.cpus.value),
      memory: this.memory.value.trim(),
      runtime: this.runtime.value.trim()
    };
    if (profile.gpus.max > 0) {
      resources.gpus = Number(this.gpus.value);
    }
    return resources;
  }

  private selected(): IJobProfile {
    return (
      this.options.profiles.find(p => p.name === this.profile.value) ?? this.options.profiles[0]
    );
  }

  /** The profile's defaults and limits (a change of profile starts from its defaults). */
  private fill(profile: IJobProfile): void {
    const trans = this.trans;
    this.profileHint.textContent = profile.description ?? '';
    clear(this.partition);
    for (const name of profile.partitions) {
      this.partition.append(h('option', { value: name }, name));
    }
    this.partition.value = profile.partitions[0];
    this.partition.disabled = profile.partitions.length < 2;
    this.hints.partition.textContent =
      profile.partitions.length < 2 ? trans.__('the only partition of this profile') : '';
    this.cpus.min = String(profile.cpus.min);
    this.cpus.max = String(profile.cpus.max);
    this.cpus.value = String(profile.cpus.default);
    this.hints.cpus.textContent = rangeHint(profile.cpus, trans);
    this.memory.value = profile.memory.default;
    this.hints.memory.textContent = rangeHint(profile.memory, trans);
    this.runtime.value = profile.runtime.default;
    this.hints.runtime.textContent = trans.__(
      'hours:minutes:seconds, %1',
      rangeHint(profile.runtime, trans)
    );
    this.gpus.min = String(profile.gpus.min);
    this.gpus.max = String(profile.gpus.max);
    this.gpus.value = String(profile.gpus.default);
    this.hints.gpus.textContent = rangeHint(profile.gpus, trans);
    // Only profiles with GPUs offer them.
    this.gpuField.hidden = profile.gpus.max === 0;
    // A value the profile fixes is shown, not offered.
    this.cpus.readOnly = profile.cpus.min === profile.cpus.max;
    this.gpus.readOnly = profile.gpus.min === profile.gpus.max;
    this.memory.readOnly = profile.memory.min === profile.memory.max;
    this.runtime.readOnly = profile.runtime.min === profile.runtime.max;
  }

  private profile: HTMLSelectElement;
  private profileHint: HTMLElement;
  private partition: HTMLSelectElement;
  private cpus: HTMLInputElement;
  private memory: HTMLInputElement;
  private runtime: HTMLInputElement;
  private gpus: HTMLInputElement;
  private gpuField: HTMLElement;
  private hints: { [name: string]: HTMLElement };
}

/** Ask for the resources; null when the user cancels. */
export async function askResources(
  options: IJobOptions,
  target: IJobTarget,
  sessionProfile: string,
  trans: TranslationBundle
): Promise<IJobRequest | null> {
  const body = new SubmitJobBody(options, target, sessionProfile, trans);
  const answer = await showDialog({
    title: trans.__('Submit %1 as a SLURM job', target.script),
    body,
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.okButton({ label: trans.__('Submit') })
    ],
    focusNodeSelector: 'select'
  });
  if (!answer.button.accept || answer.value === null) {
    return null;
  }
  return { project: target.project, script: target.script, resources: answer.value };
}
