/**
 * The source API (after Flink's FLIP-27): a source creates splits and readers; a reader emits the
 * records of the splits it was given and snapshots their positions.
 *
 * NOTE: splits are assigned statically: every subtask calls `createSplits(parallelism)` (which must
 * be deterministic) and takes the splits `i` with `i % parallelism === subtaskIndex`. On restore
 * the snapshotted splits are redistributed evenly instead, so no split is read twice or lost.
 *
 * Watermarks are generated per split (a reader writes each split's records to
 * `output.forSplit(id)`) and combined per subtask as the minimum over active splits, as Flink does.
 */
import type { ListState } from '../../state/descriptors.js';
import { ListStateDescriptor } from '../../state/descriptors.js';
import type { AlignmentGroup, Clock, TaskInfo } from '../contract.js';
import { MAX_WATERMARK, NO_TIMESTAMP } from '../contract.js';
import { AbstractStreamOperator } from '../operator.js';
import type {
  TimestampAssigner,
  WatermarkGenerator,
  WatermarkOutput,
  WatermarkStrategy,
} from '../watermarks.js';

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

/** Where a reader sends records (and, if it knows them, watermarks). */
export interface ReaderOutput<T> {
  /** Emits a record; `timestamp` is its event time if the source knows it. */
  collect(value: T, timestamp?: number): void;
  /** Emits a watermark directly (sources that know their event-time progress). */
  emitWatermark(watermark: number): void;
  markIdle(): void;
  markActive(): void;
  /** The output for the records of one split (watermarks are generated per split). */
  forSplit(splitId: string): ReaderOutput<T>;
  /** The split is finished: its watermark no longer holds the others back. */
  releaseSplit(splitId: string): void;
}

/** What a reader gets from the runtime. */
export interface SourceReaderContext {
  readonly info: TaskInfo;
  readonly clock: Clock;
  /** Call when data became available after `pollNext` returned NOTHING_AVAILABLE. */
  wakeUp(): void;
  /** Have `pollNext` called again once processing time reaches `time`. */
  wakeAt(time: number): void;
  /** Have `pollNext` called again once nothing else in the job can run. */
  wakeWhenIdle(): void;
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

/** The watermark state of one split (or of the reader's main output). */
class SplitOutput<T> implements ReaderOutput<T>, WatermarkOutput {
  watermark = Number.NEGATIVE_INFINITY;
  idle = false;
  /** The main output only counts once records or watermarks went through it. */
  used = false;
  /** Records through it (a plain increment; sampled by the runtime's observer). */
  records = 0;
  constructor(
    private readonly op: SourceOperator<T>,
    readonly generator: WatermarkGenerator<T> | undefined,
    private readonly assigner: TimestampAssigner<T> | undefined,
  ) {}
  collect(value: T, timestamp?: number): void {
    const op = this.op;
    let ts = timestamp ?? NO_TIMESTAMP;
    if (this.assigner !== undefined) {
      try {
        ts = this.assigner(value, ts);
      } catch (e) {
        throw op.wrapUserError(e, value, 'timestamp assigner');
      }
    }
    this.used = true;
    this.records++;
    if (this.idle) this.markActive();
    if (this.generator !== undefined) this.generator.onEvent(value, ts, this);
    op.emitRecord(value, ts);
  }
  emitWatermark(watermark: number): void {
    this.used = true;
    if (watermark > this.watermark) {
      this.watermark = watermark;
      this.op.updateWatermark();
    }
  }
  markIdle(): void {
    this.used = true;
    if (!this.idle) {
      this.idle = true;
      this.op.updateWatermark();
    }
  }
  markActive(): void {
    if (this.idle) {
      this.idle = false;
      this.op.updateWatermark();
    }
  }
  forSplit(splitId: string): ReaderOutput<T> {
    return this.op.forSplit(splitId);
  }
  releaseSplit(splitId: string): void {
    this.op.releaseSplit(splitId);
  }
}

/**
 * Runs a source reader in a task: split assignment and state, timestamps, per-split watermark
 * generation (per event and periodic), idleness, alignment, and the final watermark at the end.
 */
export class SourceOperator<T> extends AbstractStreamOperator<T> {
  private reader!: SourceReader<T, SourceSplit>;
  private splitState!: ListState<SourceSplit>;
  private splits: SourceSplit[] = [];
  private main: SplitOutput<T> | undefined;
  private readonly perSplit = new Map<string, SplitOutput<T>>();
  private combined = Number.NEGATIVE_INFINITY;
  private idle = false;
  private alignment: AlignmentGroup | undefined;
  private cancelPeriodic: (() => void) | undefined;

  constructor(
    readonly source: Source<T, SourceSplit>,
    private readonly strategy: WatermarkStrategy<T> | undefined = undefined,
    private readonly autoWatermarkIntervalMs = 200,
  ) {
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
        wakeWhenIdle: () => ctx.wakeWhenIdle(),
      });
      this.reader.addSplits(this.splits);
    } catch (e) {
      throw this.userError(e, undefined, 'source reader');
    }
    for (const s of this.splits) this.forSplit(s.splitId);

    const strategy = this.strategy;
    if (strategy?.alignment !== undefined) this.alignment = ctx.watermarkAlignment(strategy.alignment.group);
    if (strategy !== undefined && (strategy.emitsWatermarks || strategy.idleTimeoutMs !== undefined))
      this.schedulePeriodic();
    if (this.splits.length === 0 && this.source.boundedness === 'unbounded') {
      // A subtask without splits must not hold the watermark back (Flink marks it idle).
      this.idle = true;
      this.output.emitIdle(true);
      this.alignment?.report(MAX_WATERMARK);
    }
  }

  private schedulePeriodic(): void {
    const interval = this.autoWatermarkIntervalMs;
    const tick = (time: number) => {
      for (const out of this.outputs()) out.generator?.onPeriodicEmit(out);
      this.cancelPeriodic = this.ctx.registerProcessingTimer(time + interval, tick);
    };
    // NOTE: ticks at multiples of the interval, so that the subtasks of a source emit their
    // periodic watermarks together: staggered, the minimum downstream lags up to one more
    // interval of event time behind the slowest (state waits that much longer: at Nexmark's
    // rates, 200 ms of processing time is about 18 s of event time).
    const now = this.ctx.clock.now();
    this.cancelPeriodic = this.ctx.registerProcessingTimer(
      Math.floor(now / interval) * interval + interval,
      tick,
    );
  }

  private *outputs(): IterableIterator<SplitOutput<T>> {
    // NOTE: split outputs exist from the start (so a silent split holds event time back, or goes
    // idle after the idle timeout, as in Flink). A reader that writes to the main output instead
    // of per split makes the split outputs it never used irrelevant.
    const mainUsed = this.main?.used === true;
    if (mainUsed) yield this.main!;
    for (const out of this.perSplit.values()) if (!mainUsed || out.used) yield out;
  }

  private newOutput(): SplitOutput<T> {
    const s = this.strategy;
    return new SplitOutput<T>(this, s?.createGenerator({ clock: this.ctx.clock }), s?.timestampAssigner);
  }

  /** @internal */
  forSplit(splitId: string): ReaderOutput<T> {
    let out = this.perSplit.get(splitId);
    if (out === undefined) this.perSplit.set(splitId, (out = this.newOutput()));
    return out;
  }

  /** @internal */
  releaseSplit(splitId: string): void {
    if (this.perSplit.delete(splitId)) this.updateWatermark();
  }

  /** @internal a record from a split output. */
  emitRecord(value: T, timestamp: number): void {
    if (this.idle) {
      this.idle = false;
      this.output.emitIdle(false);
    }
    this.output.collect(value, timestamp);
  }

  /** @internal recombines the split watermarks: min over active splits; all idle → idle. */
  updateWatermark(): void {
    let min = Number.POSITIVE_INFINITY;
    let active = 0;
    let any = false;
    for (const out of this.outputs()) {
      any = true;
      if (out.idle) continue;
      active++;
      if (out.watermark < min) min = out.watermark;
    }
    if (!any) return;
    if (active === 0) {
      if (!this.idle) {
        this.idle = true;
        this.output.emitIdle(true);
        this.alignment?.report(MAX_WATERMARK);
      }
      return;
    }
    if (this.idle) {
      this.idle = false;
      this.output.emitIdle(false);
    }
    if (min > this.combined) {
      this.combined = min;
      this.processWatermark(min);
    }
    this.alignment?.report(this.combined);
  }

  /**
   * @internal the splits as the runtime's observer shows them: each split's watermark, idleness
   * and records (the main output as `main` when the reader writes there), the combined
   * watermark, whether alignment pauses the reader, and how far ahead of its group it is.
   */
  observe(): {
    splits: { splitId: string; watermark: number; idle: boolean; records: number }[];
    combined: number;
    idle: boolean;
    paused: boolean;
    alignmentDrift: number | null;
  } {
    const splits: { splitId: string; watermark: number; idle: boolean; records: number }[] = [];
    const mainUsed = this.main?.used === true;
    if (mainUsed) {
      const m = this.main!;
      splits.push({ splitId: 'main', watermark: m.watermark, idle: m.idle, records: m.records });
    }
    for (const [splitId, out] of this.perSplit)
      if (!mainUsed || out.used)
        splits.push({ splitId, watermark: out.watermark, idle: out.idle, records: out.records });
    const a = this.alignment;
    const min = a?.minWatermark();
    return {
      splits,
      combined: this.combined,
      idle: this.idle,
      paused:
        a !== undefined && min !== undefined && this.combined > min + this.strategy!.alignment!.maxDriftMs,
      alignmentDrift:
        min === undefined || !Number.isFinite(min) || !Number.isFinite(this.combined)
          ? null
          : this.combined - min,
    };
  }

  /** @internal */
  wrapUserError(e: unknown, record: unknown, what: string): Error {
    return this.userError(e, record, what);
  }

  /** Polls the reader once (not while the alignment group holds this subtask back). */
  emitNext(): InputStatus {
    const a = this.alignment;
    if (a !== undefined && this.combined > a.minWatermark() + this.strategy!.alignment!.maxDriftMs) {
      // Paused: the runtime wakes this task when the group's minimum advances.
      return NOTHING_AVAILABLE;
    }
    try {
      return this.reader.pollNext(this.main ?? (this.main = this.newOutput()));
    } catch (e) {
      throw this.userError(e, undefined, 'source');
    }
  }

  /** The reader ended: the final watermark fires every event-time timer downstream. */
  endOfInput(): void {
    this.cancelPeriodic?.();
    this.alignment?.report(MAX_WATERMARK);
    if (this.idle) {
      this.idle = false;
      this.output.emitIdle(false);
    }
    this.combined = MAX_WATERMARK;
    this.processWatermark(MAX_WATERMARK);
  }

  override snapshotState(checkpointId: number): void {
    this.splitState.update(this.reader.snapshotState(checkpointId));
  }

  override close(): void {
    this.cancelPeriodic?.();
    this.reader?.close?.();
  }
}
