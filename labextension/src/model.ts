// Session and quota state shared by the panel and the status-bar item: one poll
// of each endpoint per minute, and a local one-second countdown in between.

import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { APIError, IQuota, ISession, SciTeXAPI } from './api';

export const POLL_MS = 60_000;
/** The session warning: this many seconds before the job's end. */
export const WARN_SECONDS = 15 * 60;

export type Change = 'session' | 'quota' | 'tick';

export class SciTeXModel implements IDisposable {
  constructor(readonly api: SciTeXAPI) {}

  session: ISession | null = null;
  sessionError: string | null = null;
  quota: IQuota | null = null;
  quotaError: string | null = null;

  get changed(): ISignal<this, Change> {
    return this._changed;
  }

  /** Emitted once per session, when time left first drops to WARN_SECONDS or less. */
  get warning(): ISignal<this, number> {
    return this._warning;
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
    void this.refreshSession();
    void this.refreshQuota();
    this._sessionTimer = window.setInterval(() => void this.refreshSession(), POLL_MS);
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

  async refreshQuota(): Promise<void> {
    window.clearTimeout(this._quotaTimer);
    let next = POLL_MS;
    try {
      this.quota = await this.api.quota();
      this.quotaError = null;
    } catch (err) {
      this.quotaError = describe(err);
      // 503 before the first measurement: ask again when the server says.
      if (err instanceof APIError && err.retryAfter !== null) {
        next = Math.min(POLL_MS, Math.max(1000, err.retryAfter * 1000));
      }
    }
    this._changed.emit('quota');
    if (!this._disposed) {
      this._quotaTimer = window.setTimeout(() => void this.refreshQuota(), next);
    }
  }

  private tick(): void {
    this._changed.emit('tick');
    this.checkWarning();
  }

  private checkWarning(): void {
    const left = this.timeLeft();
    if (!this._warned && left !== null && left > 0 && left <= WARN_SECONDS) {
      this._warned = true;
      this._warning.emit(left);
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    window.clearInterval(this._sessionTimer);
    window.clearInterval(this._tickTimer);
    window.clearTimeout(this._quotaTimer);
    Signal.clearData(this);
  }

  private _changed = new Signal<this, Change>(this);
  private _warning = new Signal<this, number>(this);
  private _sessionAt = 0;
  private _warned = false;
  private _disposed = false;
  private _sessionTimer = 0;
  private _tickTimer = 0;
  private _quotaTimer = 0;
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}
