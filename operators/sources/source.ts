/**
 * The source API (after Flink's FLIP-27): a source creates splits and readers; a reader emits the
 * records of the splits it was given and snapshots their positions.
 *
 * NOTE: splits are assigned statically: every subtask calls `createSplits(parallelism)` (which must
 * be deterministic) and takes the splits `i` with `i % parallelism === subtaskIndex`. On restore
 * the snapshotted splits are redistributed evenly instead, so no split is read twice or lost.
 */

import type { ListState } from '../../state/descriptors.js';
import { ListStateDescriptor } from '../../state/descriptors.js';
import type { Clock, TaskInfo } from '../contract.js';
import { MAX_WATERMARK, NO_TIMESTAMP } from '../contract.js';
import { AbstractStreamOperator } from '../operator.js';

/** The reader emitted records and has more right away. */
export const MORE_AVAILABLE = 0;
/** The reader has nothing now; it will call `wakeUp`/`wakeAt` of its context when it has. */
export const NOTHING_AVAILABLE = 1;
/** The reader's splits are all finished. */
export const END_OF_INPUT = 2;
/** What a reader's `pollNext` returns. */
export type InputStatus = typeof MORE_AVAILABLE | typeof NOTHING_AVAILABLE | typeof END_OF_INPUT;

/** A unit of source work with a position; must be plain data (it is checkpointed). */
export interface SourceSplit {
  readonly splitId: string;
}

/** Where a reader sends records. */
export interface ReaderOutput<T> {
  /** Emits a record; `timestamp` is its event time if the source knows it. */
  collect(value: T, timestamp?: number): void;
}

/** What a reader gets from the runtime. */
export interface SourceReaderContext {
  readonly info: TaskInfo;
  readonly clock: Clock;
  /** Call when data became available after `pollNext` returned NOTHING_AVAILABLE. */
  wakeUp(): void;
  /** Have `pollNext` called again once processing time reaches `time`. */
  wakeAt(time: number): void;
}

/** Reads the records of some splits. */
export interface SourceReader<T, S extends SourceSplit = SourceSplit> {
  addSplits(splits: readonly S[]): void;
  /** Emits zero or more records; says whether more are available right away. */
  pollNext(output: ReaderOutput<T>): InputStatus;
  /** The splits with their current positions. */
  snapshotState(checkpointId: number): S[];
  close?(): void;
}

/** A source of records. */
export interface Source<T, S extends SourceSplit = SourceSplit> {
  /** `bounded` sources end; `unbounded` ones run until cancelled. */
  readonly boundedness: 'bounded' | 'unbounded';
  /** 1 for a non-parallel source; undefined for any parallelism. */
  readonly maxParallelism?: number;
  /** The initial splits (deterministic for a given parallelism). */
  createSplits(parallelism: number): S[];
  createReader(context: SourceReaderContext): SourceReader<T, S>;
}

const SPLITS = new ListStateDescriptor<SourceSplit>('source-splits');

/** Runs a source reader in a task: split assignment, split state, end of input. */
export class SourceOperator<T> extends AbstractStreamOperator<T> implements ReaderOutput<T> {
  private reader!: SourceReader<T, SourceSplit>;
  private splitState!: ListState<SourceSplit>;
  private splits: SourceSplit[] = [];

  constructor(readonly source: Source<T, SourceSplit>) {
    super();
  }

  override initializeState(): void {
    this.splitState = this.ctx.operatorState.getListState(SPLITS);
    if (this.ctx.operatorState.isRestored) {
      this.splits = [...this.splitState.get()];
    } else {
      const { subtaskIndex, parallelism } = this.ctx.info;
      this.splits = this.source.createSplits(parallelism).filter((_s, i) => i % parallelism === subtaskIndex);
    }
  }

  override open(): void {
    const ctx = this.ctx;
    try {
      this.reader = this.source.createReader({
        info: ctx.info,
        clock: ctx.clock,
        wakeUp: () => ctx.wakeUp(),
        wakeAt: (t) => ctx.wakeAt(t),
      });
      this.reader.addSplits(this.splits);
    } catch (e) {
      throw this.userError(e, undefined, 'source reader');
    }
  }

  /** Polls the reader once. */
  emitNext(): InputStatus {
    try {
      return this.reader.pollNext(this);
    } catch (e) {
      throw this.userError(e, undefined, 'source');
    }
  }

  collect(value: T, timestamp?: number): void {
    this.output.collect(value, timestamp ?? NO_TIMESTAMP);
  }

  /** The reader ended: the final watermark fires every event-time timer downstream. */
  endOfInput(): void {
    this.processWatermark(MAX_WATERMARK);
  }

  override snapshotState(checkpointId: number): void {
    this.splitState.update(this.reader.snapshotState(checkpointId));
  }

  override close(): void {
    this.reader?.close?.();
  }
}
