// Session and quota state shared by the panel and the status-bar item: each
// endpoint polled with @lumino/polling (standing by while the page is hidden) at
// the intervals of the settings, and a local one-second countdown in between.

import { TranslationBundle, nullTranslator } from '@jupyterlab/translation';
import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { APIError, IQuota, ISession, SciTeXAPI } from './api';
import { MAX_MS, SciTeXSettings, ms } from './settings';

export type Change = 'session' | 'quota' | 'tick';

export class SciTeXModel implements IDisposable {
  constructor(
    readonly api: SciTeXAPI,
    readonly settings: SciTeXSettings = new SciTeXSettings(),
    readonly trans: TranslationBundle = nullTranslator.load('scitex')
  ) {
    const values = settings.values;
    this._sessionPoll = new Poll({
      auto: false,
      factory: () => this.refreshSession(),
      frequency: { interval: ms(values.sessionRefreshSeconds), backoff: false, max: MAX_MS },
      name: 'scitex:session',
      standby: 'when-hidden'
    });
    this._quotaPoll = new Poll({
      auto: false,
      factory: () => this.readQuota(),
      frequency: { interval: ms(values.quotaRefreshSeconds), backoff: false, max: MAX_MS },
      name: 'scitex:quota',
      standby: 'when-hidden'
    });
    settings.changed.connect(this.onSettings, this);
  }

  session: ISession | null = null;
  sessionError: string | null = null;
  quota: IQuota | null = null;
  quotaError: string | null = null;

  get changed(): ISignal<this, Change> {
    return this._changed;
  }

  /** Emitted once per session, when time left first drops to warnSeconds or less. */
  get warning(): ISignal<this, number> {
    return this._warning;
  }

  /** The walltime warning, in seconds before the job's end (0: none). */
  get warnSeconds(): number {
    return Math.max(0, this.settings.values.walltimeWarningMinutes) * 60;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Seconds left, counted down locally from the last answer; null when unknown. */
  timeLeft(): number | null {
    const base = this.session?.time_left_seconds;
    if (base === null || base === undefined) {
      return null;
    }
    const elapsed = Math.floor((performance.now() - this._sessionAt) / 1000);
    return Math.max(0, base - elapsed);
  }

  start(): void {
    void this._sessionPoll.start();
    void this._quotaPoll.start();
    // The countdown is local (no request): it ticks whether or not the page shows.
    this._tickTimer = window.setInterval(() => this.tick(), 1000);
  }

  async refreshSession(): Promise<void> {
    try {
      const session = await this.api.session();
      this.session = session;
      this._sessionAt = performance.now();
      this.sessionError = null;
    } catch (err) {
      // The last known session stays shown (and counting down) beside the error.
      this.sessionError = describe(err);
    }
    this._changed.emit('session');
    this.checkWarning();
  }

  /** Read the quota now (the Refresh button); the poll goes on from here. */
  async refreshQuota(): Promise<void> {
    await this._quotaPoll.refresh();
  }

  private async readQuota(): Promise<void> {
    try {
      this.quota = await this.api.quota();
      this.quotaError = null;
    } catch (err) {
      this.quotaError = describe(err);
      // 503 before the first measurement: ask again when the server says (this
      // schedule replaces the poll's usual next tick).
      const interval = ms(this.settings.values.quotaRefreshSeconds);
      if (err instanceof APIError && err.retryAfter !== null) {
        const sooner = Math.min(interval, Math.max(1000, err.retryAfter * 1000));
        void this._quotaPoll.schedule({ interval: sooner, phase: 'refreshed' });
      }
    }
    this._changed.emit('quota');
  }

  private onSettings(): void {
    const values = this.settings.values;
    this._sessionPoll.frequency = {
      ...this._sessionPoll.frequency,
      interval: ms(values.sessionRefreshSeconds)
    };
    this._quotaPoll.frequency = {
      ...this._quotaPoll.frequency,
      interval: ms(values.quotaRefreshSeconds)
    };
    this._changed.emit('tick');
  }

  private tick(): void {
    this._changed.emit('tick');
    this.checkWarning();
  }

  private checkWarning(): void {
    const left = this.timeLeft();
    const warn = this.warnSeconds;
    if (!this._warned && warn > 0 && left !== null && left > 0 && left <= warn) {
      this._warned = true;
      this._warning.emit(left);
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._sessionPoll.dispose();
    this._quotaPoll.dispose();
    window.clearInterval(this._tickTimer);
    Signal.clearData(this);
  }

  private _changed = new Signal<this, Change>(this);
  private _warning = new Signal<this, number>(this);
  private _sessionPoll: Poll;
  private _quotaPoll: Poll;
  private _sessionAt = 0;
  private _warned = false;
  private _disposed = false;
  private _tickTimer = 0;
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}
