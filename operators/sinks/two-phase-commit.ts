/**
 * Two-phase-commit sinks (Flink's TwoPhaseCommitSinkFunction): records go into a transaction;
 * at each checkpoint barrier the transaction is pre-committed (flushed, not yet visible) and kept
 * in operator state; when the checkpoint completes it is committed (made visible). After a
 * failure, transactions that a completed checkpoint pre-committed are committed again on restore
 * — so `commit` must be idempotent — and the rest are dropped with the replay.
 *
 * At the end of a bounded input, the open transaction is pre-committed; the next checkpoint of the
 * finished subtask (taken while the rest of the job runs on, or the job's final checkpoint) holds
 * it, and it is published when that checkpoint completes, or when the job has finished: a
 * publication that fails or is cut short is completed after a restore, as any other (Flink's
 * checkpoints after tasks finish, FLIP-147). Without checkpointing it is published at the end.
 * Commits run one after the other, in the order of their checkpoints.
 */

import type { ListState } from '../../state/descriptors.js';
import { ListStateDescriptor } from '../../state/descriptors.js';
import { TidemarkError } from '../../state/errors.js';
import { OneInputStreamOperator } from '../operator.js';

/** A pre-committed transaction waiting for its checkpoint to complete. */
interface PendingTransaction<TXN> {
  checkpointId: number;
  txn: TXN;
}

const PENDING = new ListStateDescriptor<PendingTransaction<unknown>>('2pc-pending');

/** The checkpoint id of the last transaction until a checkpoint holds it (the job's end publishes it). */
const END_OF_INPUT = Number.MAX_SAFE_INTEGER;

/** Context of a transaction: where it belongs, for stable, idempotent ids. */
export interface TransactionContext {
  /** Subtask index of the sink. */
  subtaskIndex: number;
  /** Restart attempt. */
  attemptNumber: number;
  /** This run of the job (see `TaskInfo.runId`). */
  runId: string;
  /** A name unique across runs, attempts and subtasks: `<runId>-<attempt>-<subtask>-<sequence>`. */
  uniqueName: string;
  /** Sequence number of the transaction within this attempt and subtask. */
  sequence: number;
}

/**
 * Base of two-phase-commit sinks. `TXN` is the transaction handle: plain data (it is
 * checkpointed), e.g. `{ id, file }`.
 */
export abstract class TwoPhaseCommitSink<T, TXN> extends OneInputStreamOperator<T, never> {
  private current: TXN | undefined;
  private pending: PendingTransaction<TXN>[] = [];
  private pendingState!: ListState<PendingTransaction<unknown>>;
  private sequence = 0;
  private ready: Promise<void> | undefined;
  /** The commits under way, in order (each waits for the one before). */
  private committing: Promise<void> = Promise.resolve();

  /** Starts a transaction. */
  protected abstract beginTransaction(ctx: TransactionContext): TXN;
  /** Adds a record to the transaction. */
  protected abstract invoke(txn: TXN, value: T, timestamp: number | null): void | Promise<void>;
  /** Makes the transaction durable but not yet visible (called at the checkpoint barrier). */
  protected abstract preCommit(txn: TXN): void | Promise<void>;
  /** Makes the transaction visible. Must be idempotent: it may run again after a restore. */
  protected abstract commit(txn: TXN): void | Promise<void>;
  /** Drops the transaction. */
  protected abstract abort(txn: TXN): void | Promise<void>;

  override initializeState(): void {
    // NOTE: union state: after a restore (at any parallelism) every subtask gets every pending
    // transaction and commits it; commits are idempotent, so the repeats are harmless, and
    // cleanup knows every transaction that is still to be committed.
    this.pendingState = this.ctx.operatorState.getUnionListState(PENDING);
    // NOTE: restored pending transactions were pre-committed by a checkpoint that completed
    // (we restore from it), so they are committed now (Flink's recoverAndCommit).
    const restored = [...this.pendingState.get()] as PendingTransaction<TXN>[];
    this.pendingState.clear();
    this.recover(restored.map((p) => p.txn));
    if (restored.length > 0) this.ready = this.inOrder(() => this.commitAll(restored));
  }

  /**
   * After a restart: `committing` are the transactions about to be committed again; anything
   * else left over by earlier attempts will never be committed and may be cleaned up.
   */
  protected recover(_committing: readonly TXN[]): void {}

  override open(): void {
    this.current = this.begin();
    if (this.ready !== undefined) this.ctx.blockOn(this.ready);
  }

  private begin(): TXN {
    return this.beginTransaction({
      subtaskIndex: this.ctx.info.subtaskIndex,
      attemptNumber: this.ctx.info.attemptNumber,
      runId: this.ctx.info.runId,
      sequence: this.sequence,
      uniqueName: `${this.ctx.info.runId}-${this.ctx.info.attemptNumber}-${this.ctx.info.subtaskIndex}-${this.sequence++}`,
    });
  }

  processElement(value: T, timestamp: number): void {
    let r: void | Promise<void>;
    try {
      r = this.invoke(this.current!, value, timestamp === Number.NEGATIVE_INFINITY ? null : timestamp);
    } catch (e) {
      throw this.userError(e, value, 'sink');
    }
    if (r instanceof Promise)
      this.ctx.blockOn(r.catch((e: unknown) => Promise.reject(this.userError(e, value, 'sink'))));
  }

  override snapshotState(checkpointId: number): void {
    const txn = this.current;
    if (txn === undefined) {
      // After the end of input (a finished subtask's checkpoint, or the final one): the last
      // transaction, pre-committed at the end, is in this checkpoint, published when it completes.
      for (const p of this.pending) if (p.checkpointId === END_OF_INPUT) p.checkpointId = checkpointId;
      this.pendingState.update(this.pending as PendingTransaction<unknown>[]);
      return;
    }
    const r = this.preCommit(txn);
    if (r instanceof Promise) this.ctx.blockOn(r);
    this.pending.push({ checkpointId, txn });
    this.pendingState.update(this.pending as PendingTransaction<unknown>[]);
    this.current = this.begin();
  }

  override notifyCheckpointComplete(checkpointId: number): Promise<void> | undefined {
    const done = this.pending.filter((p) => p.checkpointId <= checkpointId);
    // The job's end waits for the commits still under way too.
    if (done.length === 0) return checkpointId === END_OF_INPUT ? this.committing : undefined;
    this.pending = this.pending.filter((p) => p.checkpointId > checkpointId);
    this.pendingState.update(this.pending as PendingTransaction<unknown>[]);
    return this.inOrder(() => this.commitAll(done));
  }

  /** Runs `commit` once the commits before it are done (a failed one fails those after it too). */
  private inOrder(commit: () => Promise<void>): Promise<void> {
    const run = this.committing.then(commit);
    this.committing = run;
    return run;
  }

  private async commitAll(list: PendingTransaction<TXN>[]): Promise<void> {
    for (const p of list) {
      try {
        await this.commit(p.txn);
      } catch (e) {
        throw this.userError(e, undefined, `sink commit (checkpoint ${p.checkpointId})`);
      }
    }
  }

  override async finish(): Promise<void> {
    // End of input: pre-commit the open transaction; it is published with the final checkpoint.
    const txn = this.current!;
    this.current = undefined;
    await this.preCommit(txn);
    // NOTE: published with the checkpoint that next snapshots this subtask (see snapshotState), or
    // with the job's end; a restore from that checkpoint commits it again, as every restored
    // pending transaction.
    this.pending.push({ checkpointId: END_OF_INPUT, txn });
  }

  override close(): void {
    // Transactions not committed by now are dropped (they will be replayed after a restore).
    if (this.current !== undefined) void Promise.resolve(this.abort(this.current)).catch(() => {});
    this.current = undefined;
  }
}

/** A transaction of the committed-collect sink: its stable id and records. */
interface CollectTransaction {
  id: string;
  values: unknown[];
}

/** Where committed results go, deduplicated by transaction id (idempotent commits). */
export interface CommittedResults {
  commit(sinkId: string, transactionId: string, values: readonly unknown[]): void;
}

/**
 * A collecting sink with exactly-once output: records become visible (in the job result) only
 * when the checkpoint that covers them completes, or when the job finishes. For tests of
 * exactly-once behaviour.
 */
export class CommittedCollectSink<T> extends TwoPhaseCommitSink<T, CollectTransaction> {
  constructor(private readonly resultId: string) {
    super();
  }
  protected beginTransaction(ctx: TransactionContext): CollectTransaction {
    return { id: ctx.uniqueName, values: [] };
  }
  protected invoke(txn: CollectTransaction, value: T): void {
    txn.values.push(value);
  }
  protected preCommit(): void {}
  protected commit(txn: CollectTransaction): void {
    const results = this.ctx.results as unknown as Partial<CommittedResults>;
    if (typeof results.commit !== 'function')
      throw new TidemarkError('INTERNAL_ERROR', 'this runtime does not support committed results');
    results.commit(this.resultId, txn.id, txn.values);
  }
  protected abort(): void {}
}
