/**
 * Operator base classes. An operator is created per subtask, set up with an
 * {@link OperatorContext}, opened, fed records and watermarks by synchronous calls, then finished
 * and closed. Operators in one chain call each other directly through their {@link Output}.
 */
import { InvalidRecordError, TidemarkError, UserFunctionError } from '../state/errors.js';
import { describeValue, type Key } from '../state/hash.js';
import type { OperatorContext, Output } from './contract.js';
import type { KeySelector, RichFunction, RuntimeContext } from './functions.js';
import { frozenRecordHint } from './records.js';
import { createRuntimeContext } from './runtime-context.js';

/** Common behaviour of every operator. */
export abstract class AbstractStreamOperator<OUT = unknown> {
  protected ctx!: OperatorContext<OUT>;
  protected output!: Output<OUT>;

  /** Connects the operator to the runtime (called once, before `initializeState`). */
  setup(ctx: OperatorContext<OUT>): void {
    this.ctx = ctx;
    this.output = ctx.output;
  }

  /** Reads restored state; `ctx.keyedState` and `ctx.operatorState` already hold it. */
  initializeState(): void {}

  /** Called once before the first record. */
  open(): void {}

  /** A new (combined) input watermark: fires due event-time timers, then forwards it. */
  processWatermark(watermark: number): void {
    this.ctx.advanceWatermark(watermark);
    this.output.emitWatermark(watermark);
  }

  /** The (combined) input became idle or active again. */
  processIdle(idle: boolean): void {
    this.output.emitIdle(idle);
  }

  /** Input `inputIndex` (1 or 2) has ended. */
  endInput(_inputIndex: number): void {}

  /** All input has ended and the final watermark was processed: flush what is buffered. */
  finish(): void | Promise<void> {}

  /** Releases resources; called on success and on failure. */
  close(): void {}

  /** Called when a checkpoint barrier passes: write anything not yet in state stores. */
  snapshotState(_checkpointId: number): void {}

  /** Checkpoint `checkpointId` is complete (two-phase-commit sinks commit here). */
  notifyCheckpointComplete(_checkpointId: number): void | Promise<void> {}

  /** Checkpoint `checkpointId` was abandoned. */
  notifyCheckpointAborted(_checkpointId: number): void {}

  /** Wraps an exception thrown by user code with the operator, subtask, job and record. */
  protected userError(e: unknown, record?: unknown, what = 'user function'): Error {
    // NOTE: a user function's failure, or an error that already names its operator (one of a
    // chained operator downstream, passing up through this one's output), goes on as it is.
    // Anything else thrown while user code ran, tidemark's own errors for a misuse of its API
    // included, is this operator's failure.
    if (e instanceof UserFunctionError || (e instanceof TidemarkError && e.context.operatorId !== undefined))
      return e;
    const rec = record === undefined ? undefined : describeValue(record);
    const msg = e instanceof Error ? e.message : String(e);
    const info = this.ctx.info;
    return new UserFunctionError(
      `${this.ctx.describe()}: ${what} threw${rec === undefined ? '' : ` on record ${rec}`}: ${msg}${frozenRecordHint(e, record)}`,
      {
        jobName: info.jobName,
        operatorId: info.operatorId,
        operatorName: info.operatorName,
        subtaskIndex: info.subtaskIndex,
      },
      rec,
      e,
    );
  }
}

/** An operator with one input. */
export abstract class OneInputStreamOperator<IN, OUT> extends AbstractStreamOperator<OUT> {
  abstract processElement(value: IN, timestamp: number): void;
}

/** An operator with two inputs. */
export abstract class TwoInputStreamOperator<IN1, IN2, OUT> extends AbstractStreamOperator<OUT> {
  abstract processElement1(value: IN1, timestamp: number): void;
  abstract processElement2(value: IN2, timestamp: number): void;
}

/**
 * An operator that runs one user function: opens and closes it, and gives it a runtime context.
 * If the operator is keyed, `setKey` sets the record's key as current before the function runs.
 */
export abstract class UdfOperator<IN, OUT, F> extends OneInputStreamOperator<IN, OUT> {
  protected runtimeContext!: RuntimeContext;
  constructor(
    protected readonly fn: F,
    protected readonly keySelector: KeySelector<IN, Key> | undefined = undefined,
  ) {
    super();
  }

  override open(): void {
    this.runtimeContext = createRuntimeContext(this.ctx);
    openFunction(this.fn, this.runtimeContext, (e) => this.userError(e, undefined, 'open()'));
  }

  override close(): void {
    closeFunction(this.fn);
  }

  override snapshotState(checkpointId: number): void {
    snapshotFunction(this.fn, checkpointId, (e) => this.userError(e, undefined, 'snapshotState()'));
  }

  /** Sets the current key from a record (keyed operators only). */
  protected setKey(value: IN): void {
    if (this.keySelector === undefined) return;
    let key: Key;
    try {
      key = this.keySelector(value);
    } catch (e) {
      throw this.userError(e, value, 'key selector');
    }
    try {
      this.ctx.keyedState!.setCurrentKey(key);
    } catch (e) {
      // NOTE: a non-key is caught here when the input has one channel (nothing routed it).
      if (!(e instanceof InvalidRecordError)) throw e;
      throw this.userError(
        new InvalidRecordError(
          `key selector returned ${describeValue(key)}, which is not a valid key (use strings, numbers, bigints, booleans or arrays of them)`,
        ),
        value,
        'key selector',
      );
    }
  }
}

/** Calls `setRuntimeContext` and `open` on a function object; `wrap` turns what it throws into an error. */
export function openFunction(fn: unknown, rc: RuntimeContext, wrap: (e: unknown) => Error): void {
  if (typeof fn !== 'object' || fn === null) return;
  const f = fn as RichFunction & { setRuntimeContext?(rc: RuntimeContext): void };
  try {
    f.setRuntimeContext?.(rc);
    f.open?.(rc);
  } catch (e) {
    throw wrap(e);
  }
}

/** Calls the function's `snapshotState` hook, if any (Flink's CheckpointedFunction). */
export function snapshotFunction(fn: unknown, checkpointId: number, wrap: (e: unknown) => Error): void {
  if (typeof fn !== 'object' || fn === null) return;
  const f = fn as RichFunction;
  if (f.snapshotState === undefined) return;
  try {
    f.snapshotState(checkpointId);
  } catch (e) {
    throw wrap(e);
  }
}

/** Calls `close` on a function object. */

export function closeFunction(fn: unknown): void {
  if (typeof fn === 'object' && fn !== null) (fn as RichFunction).close?.();
}
