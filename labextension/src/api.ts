// The notebook server's scitex/api endpoints (see DESIGN.md section 6) and their
// error shapes. Requests go through ServerConnection so that the base URL, the
// token and the XSRF cookie are handled as for JupyterLab's own calls.

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { TranslationBundle, nullTranslator } from '@jupyterlab/translation';

export interface ISession {
  user: string;
  institution: string;
  job_id: string;
  node: string;
  profile: string;
  /** null when the job has no known end. */
  time_left_seconds: number | null;
}

export interface IQuota {
  user: string;
  institution: string;
  used_bytes: number;
  /** null when no limit is set. */
  limit_bytes: number | null;
  projects: { name: string; used_bytes: number }[];
  measured_at: string;
  source: string;
  /** Part of the tree could not be read: used_bytes is a lower bound. */
  incomplete?: boolean;
}

export interface IProject {
  name: string;
  branch: string | null;
  head?: string | null;
  /** null when the branch has no upstream. */
  ahead: number | null;
  behind: number | null;
  dirty: boolean;
  remote: string | null;
}

export interface ISyncResult extends IProject {
  committed?: boolean;
  pulled?: number;
  pushed?: number;
}

/**
 * A compute job. The jobs endpoints are newer than this panel's first version:
 * only the id is required, the rest is shown when the server sends it.
 */
export interface IJob {
  id: string;
  project?: string;
  script?: string;
  state?: string;
  reason?: string;
  node?: string;
  submitted_at?: string;
  /** SLURM's "exit:signal" once ended. */
  exit_code?: string;
}

/** A range a profile allows: counts as numbers, sizes ("4GiB") and times ("01:00:00") as text. */
export interface IRange<T extends string | number> {
  default: T;
  min: T;
  max: T;
}

export interface IJobProfile {
  name: string;
  display_name: string;
  description?: string;
  partitions: string[];
  cpus: IRange<number>;
  memory: IRange<string>;
  runtime: IRange<string>;
  gpus: IRange<number>;
}

/** What the user may ask for a compute job (``GET scitex/api/jobs/options``). */
export interface IJobOptions {
  institution?: string;
  default_profile: string | null;
  profiles: IJobProfile[];
  script_suffixes: string[];
  /** Where projects are in the file browser ("projects"); null: not reachable from it. */
  projects_path: string | null;
}

/** The end of a job's output (``GET scitex/api/jobs/{id}/log``). */
export interface IJobLog {
  id?: string;
  log: string;
  state?: string;
  truncated?: boolean;
  exists?: boolean;
  path?: string;
}

export interface IJobRequest {
  project: string;
  script: string;
  resources: { [key: string]: string | number };
}

/** An error the server answered (or a failure to reach it), with its words. */
export class APIError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: { [key: string]: unknown } = {},
    readonly retryAfter: number | null = null
  ) {
    super(message);
  }
}

// The standard phrases jupyter-server puts in "message" when a handler raised an
// HTTPError with only a reason: the reason then is the specific text.
const GENERIC_MESSAGES = new Set([
  'Bad Request',
  'Unauthorized',
  'Forbidden',
  'Not Found',
  'Method Not Allowed',
  'Conflict',
  'Payload Too Large',
  'Unprocessable Entity',
  'Too Many Requests',
  'Internal Server Error',
  'Not Implemented',
  'Bad Gateway',
  'Service Unavailable',
  'Gateway Timeout',
  'Insufficient Storage',
  'Unknown HTTP Error'
]);

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

/**
 * The error as the server words it: the JSON "message", or jupyter-server's
 * "reason" when the message is only the status phrase, else the HTTP status line.
 */
export function errorMessage(
  status: number,
  statusText: string,
  body: unknown,
  trans: TranslationBundle = nullTranslator.load('scitex')
): string {
  if (body && typeof body === 'object') {
    const fields = body as { [key: string]: unknown };
    const message = text(fields.message);
    const reason = text(fields.reason);
    if (message && reason && GENERIC_MESSAGES.has(message)) {
      return reason;
    }
    if (message || reason) {
      return message || reason;
    }
  }
  return statusText ? `${status} ${statusText}` : trans.__('HTTP error %1', status);
}

export class SciTeXAPI {
  constructor(
    readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings(),
    readonly trans: TranslationBundle = nullTranslator.load('scitex')
  ) {}

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const url = URLExt.join(this.settings.baseUrl, 'scitex/api', path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new APIError(this.trans.__('Cannot reach the notebook server: %1', why), 0);
    }
    if (!response.ok) {
      const raw = await response.text();
      let body: unknown = null;
      try {
        body = raw ? JSON.parse(raw) : null;
      } catch {
        body = null;
      }
      const retry = Number(response.headers.get('Retry-After'));
      throw new APIError(
        errorMessage(response.status, response.statusText, body, this.trans),
        response.status,
        body && typeof body === 'object' ? (body as { [key: string]: unknown }) : {},
        Number.isFinite(retry) && retry > 0 ? retry : null
      );
    }
    return response;
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this.request(path, init);
    return (await response.json()) as T;
  }

  private post<T>(path: string, body: unknown): Promise<T> {
    return this.json<T>(path, { method: 'POST', body: JSON.stringify(body) });
  }

  session(): Promise<ISession> {
    return this.json<ISession>('session');
  }

  quota(): Promise<IQuota> {
    return this.json<IQuota>('quota');
  }

  async projects(): Promise<IProject[]> {
    const reply = await this.json<{ projects: IProject[] }>('projects');
    return reply.projects ?? [];
  }

  createProject(name: string): Promise<IProject> {
    return this.post<IProject>('projects', { name });
  }

  projectStatus(name: string): Promise<IProject> {
    return this.json<IProject>(`projects/${encodeURIComponent(name)}/status`);
  }

  syncProject(name: string): Promise<ISyncResult> {
    return this.post<ISyncResult>(`projects/${encodeURIComponent(name)}/sync`, {});
  }

  async jobs(): Promise<IJob[]> {
    const reply = await this.json<unknown>('jobs');
    const list = Array.isArray(reply) ? reply : ((reply as { jobs?: unknown[] })?.jobs ?? []);
    return list.map(normalizeJob).filter((j): j is IJob => j !== null);
  }

  async submitJob(job: IJobRequest): Promise<IJob | null> {
    return normalizeJob(await this.post<unknown>('jobs', job));
  }

  async cancelJob(id: string): Promise<void> {
    await this.request(`jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
  }

  jobOptions(): Promise<IJobOptions> {
    return this.json<IJobOptions>('jobs/options');
  }

  /** The job's output: JSON {"log", "state", ...}, or plain text (older servers). */
  async jobLog(id: string): Promise<IJobLog> {
    const response = await this.request(`jobs/${encodeURIComponent(id)}/log`);
    const raw = await response.text();
    if (!(response.headers.get('Content-Type') ?? '').includes('json')) {
      return { log: raw };
    }
    const body = JSON.parse(raw) as { [key: string]: unknown };
    const log =
      typeof body.log === 'string'
        ? body.log
        : typeof body.text === 'string'
          ? body.text
          : Array.isArray(body.lines)
            ? body.lines.join('\n')
            : raw;
    return {
      id: typeof body.id === 'string' ? body.id : id,
      log,
      state: typeof body.state === 'string' ? body.state : undefined,
      truncated: body.truncated === true,
      exists: body.exists !== false,
      path: typeof body.path === 'string' ? body.path : undefined
    };
  }
}

/** A job as the server sent it, with its id as a string (id or job_id). */
export function normalizeJob(raw: unknown): IJob | null {
  if (!raw || typeof raw !== 'object') {
    return null;
  }
  const job = raw as { [key: string]: unknown };
  const id = job.id ?? job.job_id;
  if (typeof id !== 'string' && typeof id !== 'number') {
    return null;
  }
  const str = (v: unknown) =>
    typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
  return {
    id: String(id),
    project: str(job.project),
    script: str(job.script),
    state: str(job.state),
    reason: str(job.reason),
    node: str(job.node),
    submitted_at: str(job.submitted_at),
    exit_code: str(job.exit_code)
  };
}

/** SLURM states after which a job will not run again (nothing to cancel). */
const FINAL_STATES = new Set([
  'BOOT_FAIL',
  'CANCELLED',
  'COMPLETED',
  'DEADLINE',
  'FAILED',
  'NODE_FAIL',
  'OUT_OF_MEMORY',
  'PREEMPTED',
  'REVOKED',
  'TIMEOUT'
]);

export function isFinalState(state: string | undefined): boolean {
  return state !== undefined && FINAL_STATES.has(state.toUpperCase().split(' ')[0]);
}
