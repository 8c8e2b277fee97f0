/**
 * What an operator needs from the runtime. These interfaces are declared here and implemented in
 * `runtime/` (and in the test harness of `tidemark/testing`), so that operators never import the
 * runtime.
 */

import type { Key } from '../state/hash.js';
import type { KeyedStateBackend } from '../state/keyed-backend.js';
import type { OperatorStateStore } from '../state/operator-state.js';
import type { OutputTag } from './output-tag.js';

/** The timestamp of a record that has none (Flink's `Long.MIN_VALUE`). */
export const NO_TIMESTAMP = Number.NEGATIVE_INFINITY;
/** The watermark before any element (Flink's `Long.MIN_VALUE`). */
export const MIN_WATERMARK = Number.NEGATIVE_INFINITY;
/** The final watermark of a bounded input (Flink's `Long.MAX_VALUE`). */
export const MAX_WATERMARK = Number.POSITIVE_INFINITY;

/** Where an operator sends what it produces. */
export interface Output<T> {
  /** Emits a record with a timestamp ({@link NO_TIMESTAMP} for none). */
  collect(value: T, timestamp: number): void;
  /** Emits a record to a side output. */
  collectSide<S>(tag: OutputTag<S>, value: S, timestamp: number): void;
  /** Forwards a watermark. */
  emitWatermark(watermark: number): void;
  /** Marks this output idle (`true`) or active again (`false`). */
  emitIdle(idle: boolean): void;
}

/** A source of processing time (wall clock in production, a manual clock in tests). */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

/** A registered timer. */
export interface Timer<K = Key, N = unknown> {
  readonly key: K;
  readonly namespace: N;
  readonly timestamp: number;
}

/** Receives the timers of a timer service when they fire (with the timer's key set as current). */
export interface Triggerable<K = Key, N = unknown> {
  onEventTime(timer: Timer<K, N>): void;
  onProcessingTime(timer: Timer<K, N>): void;
}

/** Timers scoped to the current key, with a namespace (a window, or `undefined`). */
export interface InternalTimerService<N = unknown> {
  currentProcessingTime(): number;
  currentWatermark(): number;
  registerEventTimeTimer(namespace: N, timestamp: number): void;
  deleteEventTimeTimer(namespace: N, timestamp: number): void;
  registerProcessingTimeTimer(namespace: N, timestamp: number): void;
  deleteProcessingTimeTimer(namespace: N, timestamp: number): void;
  /**
   * Moves the current key's timer at `from` in `namespace` to `to`: the same as deleting it and
   * registering it at `to`, cheaper. Returns false (and changes nothing) if there is no such timer.
   */
  moveEventTimeTimer(namespace: N, from: number, to: number): boolean;
  moveProcessingTimeTimer(namespace: N, from: number, to: number): boolean;
  /** Number of registered timers (for tests and metrics). */
  numEventTimeTimers(): number;
  numProcessingTimeTimers(): number;
}

/** A canonical, comparable form of a timer namespace (e.g. `start:end` of a window). */
export type NamespaceKeyFn<N> = (namespace: N) => string | number;

/** A counter metric. */
export interface Counter {
  inc(n?: number): void;
  readonly count: number;
}

/** Metrics of one operator subtask. */
export interface MetricGroup {
  counter(name: string): Counter;
  /** A gauge read when metrics are reported. */
  gauge(name: string, read: () => number): void;
}

/** Results a sink reports to the job's client (collect sinks, summaries). */
export interface ResultSink {
  add(sinkId: string, subtaskIndex: number, value: unknown): void;
}

/** A place to write text lines (print sinks), standard output by default. */
export interface LineWriter {
  writeLine(line: string): void;
  /**
   * A line that belongs after every other line of the run (a summary sink's result). On several
   * slots it is written once every slot's lines are, so no slot's late print lands after it.
   * Absent: written as any line.
   */
  writeFinalLine?(line: string): void;
}

/** Identity of an operator subtask, for messages and for user functions. */
export interface TaskInfo {
  readonly jobName: string;
  /** The operator's stable id (its uid, or one derived from the graph). */
  readonly operatorId: string;
  readonly operatorName: string;
  readonly subtaskIndex: number;
  readonly parallelism: number;
  readonly maxParallelism: number;
  /** 0 on the first run, +1 on every restart. */
  readonly attemptNumber: number;
  /**
   * Identifies this run of the job (a fresh run, or a restore from a checkpoint), the same in
   * every subtask; with `attemptNumber` it makes names that never repeat across runs.
   */
  readonly runId: string;
}

/** Everything an operator subtask gets from the runtime. */
export interface OperatorContext<OUT = unknown> {
  readonly info: TaskInfo;
  readonly output: Output<OUT>;
  readonly clock: Clock;
  /** Keyed state of this subtask's key groups; `undefined` for a non-keyed operator. */
  readonly keyedState: KeyedStateBackend | undefined;
  readonly operatorState: OperatorStateStore;
  /** True if this subtask started from a checkpoint or savepoint. */
  readonly restored: boolean;

  readonly metrics: MetricGroup;
  readonly results: ResultSink;
  readonly stdout: LineWriter;
  /** The last watermark this operator received (combined over its inputs). */
  currentWatermark(): number;
  /**
   * A named timer service; timers fire into `target` with their key set as current. The same name
   * always returns the same service. `namespaceKey` gives the canonical form of a namespace.
   */
  getTimerService<N>(
    name: string,
    target: Triggerable<Key, N>,
    namespaceKey?: NamespaceKeyFn<N>,
  ): InternalTimerService<N>;
  /** Fires event-time timers up to `watermark` (called by the operator before forwarding it). */
  advanceWatermark(watermark: number): void;
  /** Asks the runtime to run this task again (a source that has data again). */
  wakeUp(): void;
  /** Asks the runtime to run this task again once processing time reaches `time`. */
  wakeAt(time: number): void;
  /** Asks the runtime to run this task again once nothing else in the job can run. */
  wakeWhenIdle(): void;
  /** Calls `callback(time)` once processing time reaches `time`; returns a cancel function. */
  registerProcessingTimer(time: number, callback: (time: number) => void): () => void;
  /** The watermark alignment group `group` of the job's sources. */
  watermarkAlignment(group: string): AlignmentGroup;
  /** The task takes no further input until `promise` settles (async sinks, flow control). */
  blockOn(promise: Promise<unknown>): void;
  /** A clear description for error messages: operator, subtask and job. */
  describe(): string;
}

/** Shared state of sources aligned on one group: each subtask reports its watermark. */
export interface AlignmentGroup {
  /** Reports this subtask's watermark (`+Infinity` when idle or finished). */
  report(watermark: number): void;
  /** The smallest watermark reported in the group (-Infinity until every member reported). */
  minWatermark(): number;
}
