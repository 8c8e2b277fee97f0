/**
 * Leader election of job managers for one job id, on a {@link LeaseStore} (Redis, or the file
 * storage's directory): one job manager holds the job's lease and renews it every third of its
 * duration; the others are refused ({@link LeadershipError}) or wait as standbys and take the lease
 * once it expires (Flink's leader election with a lease, as its Kubernetes HA services do).
 *
 * A leader that cannot renew its lease before it runs out (the process was paused, the store was
 * unreachable) has lost it: it must stop acting at once. Its checkpoint commits are refused anyway
 * once the next leader started a new epoch (fencing). A job manager without standbys may instead
 * outlast such an outage (`outlastOutages`): it keeps leading and takes the lease back once the
 * store answers, unless another job manager took it meanwhile.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { CheckpointStorage } from '../../state/storage/checkpoint-storage.js';
import {
  describeLeader,
  type JobRunRecord,
  type LeaderRecord,
  LeadershipError,
  type LeaseAttempt,
  type LeaseStore,
} from '../../state/storage/leases.js';
import type { LogLevel } from '../log.js';

/** Lease duration by default (as Flink's Kubernetes HA `lease-duration`). */
export const DEFAULT_LEASE_MS = 15_000;

/** Options of {@link electLeader}. */
export interface LeaderElectionOptions {
  store: LeaseStore;
  jobId: string;
  /** Where task managers reach this job manager (`host:port`), if it listens for them. */
  address?: string | undefined;
  /** The lease's duration (default {@link DEFAULT_LEASE_MS}); it is renewed every third of it. */
  leaseMs?: number | undefined;
  /** Wait as a standby while another job manager leads; otherwise that is a {@link LeadershipError}. */
  standby: boolean;
  /** Where its lines go, with their level (default `info`). */
  log?: ((line: string, level?: LogLevel) => void) | undefined;
  /** Stops waiting (the election then rejects with the signal's reason). */
  signal?: AbortSignal | undefined;
  /**
   * Keep leading through an outage of the store (the lease then only fences a second job manager
   * started by mistake): a lease that ran out because the store could not be reached is taken back
   * once it can, and lost only if another job manager took it meanwhile. Without it (a job with
   * standbys), a lease not renewed in time is lost, so that a standby may take over.
   */
  outlastOutages?: boolean | undefined;
}

/** How an election ended for this job manager. */
export type ElectionOutcome =
  | { outcome: 'leading'; leadership: Leadership }
  /** The run a standby waited on ended under its leader: nothing to take over. */
  | { outcome: 'ended'; run: JobRunRecord };

/**
 * Takes the job's lease: at once if nobody holds it (or its holder was a process of this host that
 * is gone); otherwise fails with a {@link LeadershipError} naming the leader, or as a standby waits
 * until its lease expires or is released.
 */
export async function electLeader(options: LeaderElectionOptions): Promise<ElectionOutcome> {
  const { store, jobId } = options;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const log = options.log ?? (() => {});
  const record: LeaderRecord = {
    token: randomUUID(),
    pid: process.pid,
    host: hostname(),
    since: Date.now(),
    leaseMs,
    ...(options.address === undefined ? {} : { address: options.address }),
  };
  const pollMs = Math.max(20, Math.min(1000, leaseMs / 3));
  let sawLeader = false;
  let lastHolder: string | undefined;
  let lastError: string | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const started = performance.now();
    record.since = Date.now();
    let attempt: LeaseAttempt;
    try {
      attempt = await store.acquire(jobId, record);
    } catch (e) {
      // NOTE: a standby outlives an outage of the store (it tries again); a job manager that is
      // not to wait reports it.
      if (!options.standby) throw e;
      const text = (e as Error).message;
      if (text !== lastError) log(`cannot reach the lease of job '${jobId}': ${text}; trying again`, 'warn');
      lastError = text;
      await sleep(pollMs, options.signal);
      continue;
    }
    lastError = undefined;
    if (attempt.acquired) {
      const previousRun = await store.readRun(jobId);
      if (sawLeader && previousRun?.state === 'ended') {
        await store.release(jobId, record.token);
        return { outcome: 'ended', run: previousRun };
      }
      const leadership = new Leadership(
        store,
        jobId,
        record,
        attempt.generation,
        started,
        previousRun,
        log,
        options.outlastOutages === true,
      );
      return { outcome: 'leading', leadership };
    }
    const holder = attempt.holder;
    if (holder === undefined) {
      // Released or expired in the meantime (or unreadable): try again shortly.
      await sleep(Math.min(pollMs, 50), options.signal);
      continue;
    }
    // NOTE: a job manager of this host that died (kill -9, a crash) leaves its lease behind: a
    // process that is gone holds nothing, so the lease is released at once rather than waited out.
    if (holder.host === record.host && holder.pid !== process.pid && !processAlive(holder.pid)) {
      log(`the lease of job '${jobId}' is held by pid ${holder.pid}, which is gone: releasing it`);
      await store.release(jobId, holder.token);
      continue;
    }
    if (!options.standby)
      throw new LeadershipError(
        jobId,
        `job '${jobId}' already has a job manager: ${describeLeader(holder)} (its lease in ${store.description} is live for ${attempt.remainingMs ?? '?'} ms more and renewed every ${Math.round(holder.leaseMs / 3)} ms). Stop it first, or start this one with --standby (or --ha URL) to wait as its standby`,
      );
    sawLeader = true;
    if (lastHolder !== holder.token) {
      lastHolder = holder.token;
      log(
        `job '${jobId}' is led by the job manager with ${describeLeader(holder)}; waiting as its standby (lease in ${store.description})`,
      );
    }
    const waitMs = Math.max(5, Math.min(pollMs, (attempt.remainingMs ?? pollMs) + 5));
    await sleep(waitMs, options.signal);
  }
}

/** This job manager's leadership of a job: renews the lease until it ends or is lost. */
export class Leadership {
  private readonly lostListeners: ((reason: string) => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Fires when the lease runs out without a renewal (a renewal may hang on an unreachable store). */
  private watchdog: NodeJS.Timeout | undefined;
  /** The lease holds until then (performance.now() time: the last renewal sent plus the lease). */
  private validUntil: number;
  private lostReason: string | undefined;
  private stopped = false;
  private lastError: string | undefined;

  constructor(
    private readonly store: LeaseStore,
    readonly jobId: string,
    private readonly record: LeaderRecord,
    /** How many times the job's lease was taken, this time included: grows with each leader. */
    readonly generation: number,
    acquiredAt: number,
    /** The run record the previous leader left (a run still `running`: this one takes it over). */
    readonly previousRun: JobRunRecord | undefined,
    private readonly log: (line: string, level?: LogLevel) => void,
    /** See {@link LeaderElectionOptions.outlastOutages}. */
    private readonly outlastOutages = false,
  ) {
    this.validUntil = acquiredAt + record.leaseMs;
    this.watch();
    this.schedule(record.leaseMs / 3);
  }

  /** Where this leader is, for run records. */
  get by(): string {
    return this.record.address ?? `pid ${this.record.pid} on ${this.record.host}`;
  }

  /** Why the lease was lost, once it was. */
  get lost(): string | undefined {
    return this.lostReason;
  }

  /** Calls `listener` once if the lease is lost (not renewed in time, or taken by another). */
  onLost(listener: (reason: string) => void): void {
    if (this.lostReason !== undefined) listener(this.lostReason);
    else this.lostListeners.push(listener);
  }

  /** Writes the job's run record; fails with a {@link LeadershipError} if the lease is not held. */
  async writeRun(run: Omit<JobRunRecord, 'by' | 'at'>): Promise<void> {
    this.check();
    if (!(await this.store.writeRun(this.jobId, this.record.token, { ...run, by: this.by, at: Date.now() })))
      throw this.lose(`another job manager holds the lease of job '${this.jobId}'`);
  }

  /** The run ended (finished, failed or cancelled): says so in the run record and gives the lease up. */
  async end(status: string): Promise<void> {
    try {
      if (this.lostReason === undefined) await this.writeRun({ state: 'ended', status });
    } finally {
      await this.resign();
    }
  }

  /** Stops renewing and gives the lease up (a standby takes over at once). */
  async resign(): Promise<void> {
    const wasLost = this.lostReason !== undefined;
    this.stop();
    if (!wasLost) await this.store.release(this.jobId, this.record.token);
  }

  /** Stops renewing (the lease runs out by itself). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.watchdog !== undefined) clearTimeout(this.watchdog);
    this.timer = undefined;
    this.watchdog = undefined;
  }

  private watch(): void {
    if (this.watchdog !== undefined) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(
      () => {
        if (this.stopped) return;
        if (performance.now() >= this.validUntil && !this.outlastingOutage()) this.lose(this.overdue());
        else this.watch();
      },
      Math.max(this.outlastingOutage() ? 1000 : 1, this.validUntil - performance.now()),
    );
    this.watchdog.unref();
  }

  private check(): void {
    if (this.lostReason !== undefined) throw new LeadershipError(this.jobId, this.lostReason);
    if (performance.now() > this.validUntil && !this.outlastingOutage()) throw this.lose(this.overdue());
  }

  /**
   * Whether a lease that ran out is kept anyway (taken back at the next renewal unless another job
   * manager took it: only the store can say that, so an unreachable store or a paused process
   * loses nothing; commits are fenced by epoch anyway).
   */
  private outlastingOutage(): boolean {
    return this.outlastOutages;
  }

  private overdue(): string {
    return `the lease of job '${this.jobId}' in ${this.store.description} was not renewed within its ${this.record.leaseMs} ms${this.lastError === undefined ? '' : ` (last error: ${this.lastError})`}`;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.renew(), Math.max(1, delayMs));
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    const sentAt = performance.now();
    // NOTE: a renewal after the lease ran out does not count, even if nobody took it meanwhile: a
    // standby may be taking over right now (this process was paused, or the store unreachable).
    const lapsed = sentAt > this.validUntil;
    if (lapsed && !this.outlastingOutage()) {
      this.lose(this.overdue());
      return;
    }
    try {
      let held = await this.store.renew(this.jobId, this.record.token, this.record.leaseMs);
      if (this.stopped) return;
      if (!held && this.outlastingOutage()) {
        // NOTE: the lease ran out while the store was unreachable, or while this renewal waited
        // (sent in time, it reached a slow store, or waited behind the process's own file I/O,
        // after the lease ran out); unless another job manager took it meanwhile (its new epoch
        // then fences this one's commits), it is taken back. Without outlastOutages, a renewal
        // sent in time that finds the lease gone is refused below: a standby may be taking over.
        held = (await this.store.acquire(this.jobId, { ...this.record, since: Date.now() })).acquired;
        if (this.stopped) return;
        if (held)
          this.log(
            lapsed
              ? `took the lease of job '${this.jobId}' back: ${this.store.description} can be reached again`
              : `took the lease of job '${this.jobId}' back: it ran out before its renewal reached ${this.store.description}`,
          );
      }
      if (!held) {
        this.lose(
          `another job manager took the lease of job '${this.jobId}' in ${this.store.description}, or it ran out before its renewal reached the store`,
        );
        return;
      }
      this.validUntil = sentAt + this.record.leaseMs;
      this.lastError = undefined;
      this.watch();
      this.schedule(this.record.leaseMs / 3);
    } catch (e) {
      if (this.stopped) return;
      const text = (e as Error).message;
      if (text !== this.lastError)
        this.log(`cannot renew the lease of job '${this.jobId}': ${text}; retrying`, 'warn');
      this.lastError = text;
      // Retry soon, but not past the moment the lease runs out (that check loses it, unless an
      // outage is outlasted: then retry at the same pace).
      const retryMs = Math.max(50, this.record.leaseMs / 10);
      this.schedule(
        this.outlastingOutage() ? retryMs : Math.min(retryMs, this.validUntil - performance.now() + 1),
      );
    }
  }

  private lose(reason: string): LeadershipError {
    if (this.lostReason === undefined) {
      this.lostReason = reason;
      this.stop();
      for (const l of this.lostListeners.splice(0)) l(reason);
    }
    return new LeadershipError(this.jobId, this.lostReason);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * How a task manager finds the job manager that leads `jobId` now: the address in its lease, in
 * `storage` (opened on first use, so a store that is not reachable yet is tried again).
 */
export function leaderAddress(storage: CheckpointStorage, jobId: string): () => Promise<string> {
  const store = storage.leases?.();
  if (store === undefined)
    throw new LeadershipError(
      jobId,
      `${storage.description} keeps no leader leases (use redis://... or a directory)`,
    );
  let opened = false;
  return async () => {
    if (!opened) {
      await storage.open();
      opened = true;
    }
    const holder = await store.holder(jobId);
    if (holder === undefined)
      throw new Error(`no job manager leads job '${jobId}' in ${store.description} yet`);
    if (holder.address === undefined)
      throw new Error(
        `the job manager leading job '${jobId}' (${describeLeader(holder)}) does not listen for task managers`,
      );
    return holder.address;
  };
}
