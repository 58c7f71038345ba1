// The user's compute jobs, read with a Poll while one of them may still change
// (standing by while the page is hidden), and a signal when one ends: the panel's
// list and the end-of-job notification share it.

import { IDisposable } from '@lumino/disposable';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { IJob, SciTeXAPI, isFinalState } from './api';
import { describe } from './model';
import { MAX_MS, SciTeXSettings, ms } from './settings';

export class JobWatcher implements IDisposable {
  constructor(
    private api: SciTeXAPI,
    private settings: SciTeXSettings
  ) {
    this._poll = new Poll({
      auto: false,
      factory: () => this.refresh(),
      frequency: {
        interval: ms(settings.values.jobsRefreshSeconds),
        backoff: false,
        max: MAX_MS
      },
      name: 'scitex:jobs',
      // Nothing to follow when every job has ended; paused while the page is hidden.
      standby: () => (this.active ? 'when-hidden' : true)
    });
    settings.changed.connect(() => {
      this._poll.frequency = {
        ...this._poll.frequency,
        interval: ms(this.settings.values.jobsRefreshSeconds)
      };
    });
  }

  jobs: IJob[] = [];
  error: string | null = null;

  /** Emitted after each read of the list. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted once when a job seen running (or submitted here) has ended. */
  get ended(): ISignal<this, IJob> {
    return this._ended;
  }

  /** Whether a job may still change state (or the list was never read). */
  get active(): boolean {
    return !this._loaded || this._expected.size > 0 || this.jobs.some(j => !isFinalState(j.state));
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  start(): void {
    void this._poll.start();
  }

  /** A job just submitted: its end is notified even if it ends before the next read. */
  expect(id: string): void {
    this._expected.add(id);
    void this.refresh();
  }

  /** Read the list now; concurrent calls share one request. */
  refresh(): Promise<void> {
    if (!this._reading) {
      this._reading = this.read().finally(() => {
        this._reading = null;
      });
    }
    return this._reading;
  }

  private async read(): Promise<void> {
    try {
      const jobs = await this.api.jobs();
      for (const job of jobs) {
        const before = this._states.get(job.id);
        const seenRunning = before !== undefined && !isFinalState(before);
        if (isFinalState(job.state) && (seenRunning || this._expected.has(job.id))) {
          this._expected.delete(job.id);
          this._ended.emit(job);
        }
        this._states.set(job.id, job.state ?? '');
      }
      this.jobs = jobs;
      this.error = null;
      this._loaded = true;
    } catch (err) {
      this.error = describe(err);
    }
    this._changed.emit();
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  private _poll: Poll;
  private _loaded = false;
  private _reading: Promise<void> | null = null;
  private _states = new Map<string, string>();
  private _expected = new Set<string>();
  private _changed = new Signal<this, void>(this);
  private _ended = new Signal<this, IJob>(this);
}
