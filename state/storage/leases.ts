/**
 * Leader leases of jobs: which job manager leads a job id, kept where the job's checkpoints are
 * (a file storage's directory, a Redis server) or in a separate high-availability store. One job
 * manager at a time holds a job's lease; it renews it well before it expires, and a job manager
 * that cannot renew it in time stops acting (the checkpoint epoch fences its commits anyway).
 *
 * Beside the lease, a job has a run record (no expiry): whether a run of the job is under way and
 * where it started from, so that a job manager taking the lease over from one that died resumes
 * the run (Flink's running-jobs registry), and a standby learns that the run it waited on ended.
 */
import { registerErrorClass } from '../errors.js';
import { StorageError } from './checkpoint-storage.js';

/** The holder of a job's lease, as it describes itself. */
export interface LeaderRecord {
  /** Unique per acquisition: renewal and release compare it. */
  token: string;
  /** Where task managers reach this job manager (`host:port`), if it listens for them. */
  address?: string;
  pid: number;
  host: string;
  /** When it took the lease, ms since the epoch. */
  since: number;
  /** The lease's duration it renews with, in ms. */
  leaseMs: number;
}

/** What the leader of a job says of the job's run (kept until overwritten). */
export interface JobRunRecord {
  /** `running` from the start of a run to its end; `ended` once it finished, failed or was cancelled. */
  state: 'running' | 'ended';
  /** The checkpoint or savepoint the run started from; absent: from the beginning. */
  startedFrom?: number;
  /** The job's latest checkpoint when the run started (absent: none). */
  latestAtStart?: number;
  /** How it ended (`FINISHED`, `FAILED`, `CANCELLED`). */
  status?: string;
  /** The leader that wrote it (its address, or pid and host). */
  by: string;
  /** When it was written, ms since the epoch. */
  at: number;
}

/** The outcome of one attempt to take a lease. */
export type LeaseAttempt =
  /** Taken; `generation` counts the acquisitions of this job's lease (it only grows). */
  | { acquired: true; generation: number }
  /** Held by another (`holder` undefined if it went in the meantime); `remainingMs`: until it expires. */
  | { acquired: false; holder: LeaderRecord | undefined; remainingMs: number | undefined };

/** Where leases and run records live. */
export interface LeaseStore {
  /** A printable description without secrets. */
  readonly description: string;
  /** Takes the job's lease for `record.leaseMs` if nobody holds it (or its holder's lease expired). */
  acquire(jobId: string, record: LeaderRecord): Promise<LeaseAttempt>;
  /** Extends the lease by `leaseMs` if `token` still holds it; false if it does not. */
  renew(jobId: string, token: string, leaseMs: number): Promise<boolean>;
  /** Gives the lease up if `token` holds it (compare and delete); does nothing otherwise. */
  release(jobId: string, token: string): Promise<void>;
  /** The current holder, if any (an expired lease has none). */
  holder(jobId: string): Promise<LeaderRecord | undefined>;
  /** The job's run record, if one was written. */
  readRun(jobId: string): Promise<JobRunRecord | undefined>;
  /** Writes the run record if `token` holds the lease; false if it does not. */
  writeRun(jobId: string, token: string, run: JobRunRecord): Promise<boolean>;
}

/**
 * Another job manager leads the job (it holds a live lease), or this one lost its lease: a job
 * manager never runs beside another for the same job id.
 */
export class LeadershipError extends StorageError {
  constructor(jobId: string, message: string) {
    super(message, { jobName: jobId });
    this.name = 'LeadershipError';
  }
}
registerErrorClass('LeadershipError', LeadershipError);

/** Parses a stored leader record; undefined if it is not one. */
export function parseLeaderRecord(text: string | null | undefined): LeaderRecord | undefined {
  if (text === null || text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as Partial<LeaderRecord>;
    if (typeof r.token !== 'string' || typeof r.pid !== 'number' || typeof r.host !== 'string')
      return undefined;
    return {
      token: r.token,
      pid: r.pid,
      host: r.host,
      since: Number(r.since ?? 0),
      leaseMs: Number(r.leaseMs ?? 0),
      ...(typeof r.address === 'string' ? { address: r.address } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Parses a stored run record; undefined if it is not one. */
export function parseRunRecord(text: string | null | undefined): JobRunRecord | undefined {
  if (text === null || text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as Partial<JobRunRecord>;
    if (r.state !== 'running' && r.state !== 'ended') return undefined;
    return {
      state: r.state,
      by: String(r.by ?? '?'),
      at: Number(r.at ?? 0),
      ...(typeof r.startedFrom === 'number' ? { startedFrom: r.startedFrom } : {}),
      ...(typeof r.latestAtStart === 'number' ? { latestAtStart: r.latestAtStart } : {}),
      ...(typeof r.status === 'string' ? { status: r.status } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Describes a leader for messages: `pid 12 on host h, listening on 10.0.0.1:6123, since ...`. */
export function describeLeader(r: LeaderRecord): string {
  return `pid ${r.pid} on host ${r.host}${r.address === undefined ? '' : `, listening on ${r.address}`}, leading since ${new Date(r.since).toISOString()}`;
}
