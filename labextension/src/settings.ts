// The extension's settings (schema/plugin.json), read through ISettingRegistry:
// refresh intervals and the walltime warning. Defaults here match the schema's,
// used when the registry is unavailable.

import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ISignal, Signal } from '@lumino/signaling';

export interface ISciTeXSettings {
  sessionRefreshSeconds: number;
  quotaRefreshSeconds: number;
  jobsRefreshSeconds: number;
  logRefreshSeconds: number;
  walltimeWarningMinutes: number;
  openLogOnSubmit: boolean;
}

export const DEFAULT_SETTINGS: ISciTeXSettings = {
  sessionRefreshSeconds: 60,
  quotaRefreshSeconds: 60,
  jobsRefreshSeconds: 15,
  logRefreshSeconds: 3,
  walltimeWarningMinutes: 15,
  openLogOnSubmit: true
};

/** The current values, and a signal when the user changes them. */
export class SciTeXSettings {
  values: ISciTeXSettings = { ...DEFAULT_SETTINGS };

  get changed(): ISignal<this, ISciTeXSettings> {
    return this._changed;
  }

  /** Follow the registry's values for this plugin (their changes included). */
  connect(settings: ISettingRegistry.ISettings): void {
    const read = () => {
      const next = { ...DEFAULT_SETTINGS };
      for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof ISciTeXSettings)[]) {
        const value = settings.get(key).composite;
        if (typeof value === typeof DEFAULT_SETTINGS[key]) {
          (next as { [k: string]: unknown })[key] = value;
        }
      }
      this.values = next;
      this._changed.emit(next);
    };
    read();
    settings.changed.connect(read);
  }

  private _changed = new Signal<this, ISciTeXSettings>(this);
}

/** The longest interval a setting may give (the schema's maximum is lower). */
export const MAX_MS = 24 * 3600 * 1000;

/** Seconds to milliseconds, at least one second. */
export function ms(seconds: number): number {
  return Math.max(1, seconds) * 1000;
}
