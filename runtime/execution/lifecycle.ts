/**
 * The lifecycle of one attempt of a job, the same whether its subtasks run in this thread or on
 * slots and hosts: it runs until every subtask finished, or until it fails (the first failure
 * wins and names where it happened) or is cancelled. A run that finished takes its final
 * checkpoint, then lets its sinks publish their last transactions, then reports its result.
 */
import { JobCancelledError, JobFailedError, TidemarkError } from '../../state/errors.js';
import type { CheckpointCoordinator } from '../checkpoint/coordinator.js';
import type { JobMetricsSnapshot } from '../metrics.js';
import type { JobResult } from './results.js';

/** The state of one attempt: running, failed or cancelled. */
export class JobLifecycle {
  private failure: { error: unknown; where: string | undefined } | undefined;
  private cancelledFlag = false;
  private readonly listeners: (() => void)[] = [];
  private readonly started = performance.now();

  constructor(readonly jobName: string) {}

  /** True once the run failed or was cancelled: everything should stop. */
  get stopped(): boolean {
    return this.failure !== undefined || this.cancelledFlag;
  }

  get cancelled(): boolean {
    return this.cancelledFlag;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Calls `listener` whenever the run fails or is cancelled (to wake what waits). */
  onStop(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The run failed (only the first failure counts); `where` names the subtask, if known. */
  fail(error: unknown, where?: string): void {
    if (this.failure !== undefined || this.cancelledFlag) return;
    this.failure = { error, where };
    for (const l of this.listeners) l();
  }

  /** The run is cancelled: it ends with status CANCELLED. */
  cancel(): void {
    if (this.cancelledFlag) return;
    this.cancelledFlag = true;
    for (const l of this.listeners) l();
  }

  /** The error the run ends with: the failure, naming the job and where it happened. */
  error(): Error {
    const f = this.failure;
    if (f === undefined) return new TidemarkError('INTERNAL_ERROR', `job '${this.jobName}' did not fail`);
    const e = f.error;
    if (e instanceof JobCancelledError || e instanceof JobFailedError) return e;
    const ctx = e instanceof TidemarkError ? e.context : {};
    const where = e instanceof TidemarkError || f.where === undefined ? '' : ` in ${f.where}`;
    const msg = e instanceof Error ? e.message : String(e);
    return new JobFailedError(
      `job '${this.jobName}' failed${where}: ${msg}`,
      { ...ctx, jobName: this.jobName },
      e,
    );
  }

  /**
   * The end of a run whose subtasks all finished: the final checkpoint (when checkpointing), then
   * the sinks publish (`publish`). A failure of either fails the run.
   */
  async complete(
    coordinator: CheckpointCoordinator | undefined,
    now: number,
    publish: () => Promise<void>,
  ): Promise<void> {
    // NOTE: the final checkpoint holds the sinks' last transactions, so that their publication is
    // completed after a restore if it fails or is cut short.
    if (!this.stopped && coordinator !== undefined) {
      // A failure meanwhile (a finished sink's commit, which the final checkpoint waits for) ends the wait.
      this.onStop(() => coordinator.stop());
      await coordinator.triggerFinal(now).catch((e: unknown) => this.fail(e));
    }
    coordinator?.stop();
    if (!this.stopped) await publish().catch((e: unknown) => this.fail(e));
  }

  /** The result of a run that ended without failing; throws the failure otherwise. */
  result(metrics: JobMetricsSnapshot, results: ReadonlyMap<string, unknown[]>): JobResult {
    if (this.failure !== undefined) throw this.error();
    return {
      jobName: this.jobName,
      status: this.cancelledFlag ? 'CANCELLED' : 'FINISHED',
      durationMs: performance.now() - this.started,
      metrics,
      results,
    };
  }
}
