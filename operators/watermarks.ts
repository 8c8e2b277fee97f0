/**
 * Watermark strategies (Flink's `WatermarkStrategy`): how records get their event timestamps and
 * how watermarks are generated from them, with idleness and watermark alignment.
 *
 * Semantics copied from Flink:
 * - bounded out-of-orderness `d`: watermark = max timestamp seen - d - 1 (-Infinity before any);
 * - monotonous timestamps: the same with d = 0;
 * - periodic generators emit every `autoWatermarkInterval` of processing time (default 200 ms);
 * - with idleness, a split that had no records for the timeout is marked idle (checked on each
 *   periodic emit) and becomes active again with its next record.
 */
import { InvalidArgumentError } from '../state/errors.js';
import type { Clock } from './contract.js';

/** Where a watermark generator sends watermarks. */
export interface WatermarkOutput {
  emitWatermark(watermark: number): void;
  /** No more records for a while: leave the watermark minimum downstream. */
  markIdle(): void;
  /** Records flow again. */
  markActive(): void;
}

/** Generates watermarks from the records it sees and/or periodically. */
export interface WatermarkGenerator<T> {
  onEvent(event: T, eventTimestamp: number, output: WatermarkOutput): void;
  onPeriodicEmit(output: WatermarkOutput): void;
}

/** Extracts the event timestamp of a record (`recordTimestamp` is what the source gave, if any). */
export type TimestampAssigner<T> = (element: T, recordTimestamp: number) => number;

/** What generator factories receive. */
export interface WatermarkGeneratorContext {
  readonly clock: Clock;
}

/** Watermark alignment of a group of sources (see {@link WatermarkStrategy.withWatermarkAlignment}). */
export interface WatermarkAlignment {
  readonly group: string;
  readonly maxDriftMs: number;
}

/** Bounded out-of-orderness: watermark = max timestamp - bound - 1. */
export class BoundedOutOfOrdernessWatermarks<T> implements WatermarkGenerator<T> {
  private maxTimestamp = Number.NEGATIVE_INFINITY;
  constructor(private readonly outOfOrdernessMs: number) {
    if (!(outOfOrdernessMs >= 0))
      throw new InvalidArgumentError(`the out-of-orderness bound must be >= 0, got ${outOfOrdernessMs}`);
  }
  onEvent(_event: T, timestamp: number): void {
    if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
  }
  onPeriodicEmit(output: WatermarkOutput): void {
    output.emitWatermark(this.maxTimestamp - this.outOfOrdernessMs - 1);
  }
}

/** Emits nothing (records may still carry timestamps). */
class NoWatermarks<T> implements WatermarkGenerator<T> {
  onEvent(): void {}
  onPeriodicEmit(): void {}
}

/** Marks its output idle when no record came for `timeoutMs` of processing time. */
export class WatermarksWithIdleness<T> implements WatermarkGenerator<T> {
  private lastEvent: number;
  private idle = false;
  constructor(
    private readonly inner: WatermarkGenerator<T>,
    private readonly timeoutMs: number,
    private readonly clock: Clock,
  ) {
    this.lastEvent = clock.now();
  }
  onEvent(event: T, timestamp: number, output: WatermarkOutput): void {
    this.lastEvent = this.clock.now();
    if (this.idle) {
      this.idle = false;
      output.markActive();
    }
    this.inner.onEvent(event, timestamp, output);
  }
  onPeriodicEmit(output: WatermarkOutput): void {
    if (this.idle) return;
    if (this.clock.now() - this.lastEvent >= this.timeoutMs) {
      this.idle = true;
      output.markIdle();
      return;
    }
    this.inner.onPeriodicEmit(output);
  }
}

/** How a stream gets timestamps and watermarks. Immutable: every `with...` returns a new one. */
export class WatermarkStrategy<T> {
  private constructor(
    /** @internal */ readonly generatorFactory: (ctx: WatermarkGeneratorContext) => WatermarkGenerator<T>,
    /** @internal */ readonly timestampAssigner: TimestampAssigner<T> | undefined,
    /** @internal */ readonly idleTimeoutMs: number | undefined,
    /** @internal */ readonly alignment: WatermarkAlignment | undefined,
    /** @internal */ readonly emitsWatermarks: boolean,
  ) {}

  /** Watermarks trail the largest timestamp seen by `maxOutOfOrdernessMs` (+1 ms). */
  static forBoundedOutOfOrderness<T>(maxOutOfOrdernessMs: number): WatermarkStrategy<T> {
    new BoundedOutOfOrdernessWatermarks<T>(maxOutOfOrdernessMs); // validates the bound
    return new WatermarkStrategy<T>(
      () => new BoundedOutOfOrdernessWatermarks<T>(maxOutOfOrdernessMs),
      undefined,
      undefined,
      undefined,
      true,
    );
  }

  /** Timestamps never decrease: watermark = largest timestamp - 1. */
  static forMonotonousTimestamps<T>(): WatermarkStrategy<T> {
    return WatermarkStrategy.forBoundedOutOfOrderness<T>(0);
  }

  /** No watermarks (only the final one at the end of a bounded input). */
  static noWatermarks<T>(): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>(() => new NoWatermarks<T>(), undefined, undefined, undefined, false);
  }

  /** A custom generator (per-event in `onEvent`, periodic in `onPeriodicEmit`, or both). */
  static forGenerator<T>(
    factory: (ctx: WatermarkGeneratorContext) => WatermarkGenerator<T>,
  ): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>(factory, undefined, undefined, undefined, true);
  }

  /** Sets how records get their event timestamp. */
  withTimestampAssigner(assigner: TimestampAssigner<T>): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>(
      this.generatorFactory,
      assigner,
      this.idleTimeoutMs,
      this.alignment,
      this.emitsWatermarks,
    );
  }

  /** Marks a split idle after `idleTimeoutMs` of processing time without records. */
  withIdleness(idleTimeoutMs: number): WatermarkStrategy<T> {
    if (!(idleTimeoutMs > 0))
      throw new InvalidArgumentError(`the idle timeout must be positive, got ${idleTimeoutMs}`);
    return new WatermarkStrategy<T>(
      this.generatorFactory,
      this.timestampAssigner,
      idleTimeoutMs,
      this.alignment,
      this.emitsWatermarks,
    );
  }

  /**
   * Aligns the watermarks of every source in `group`: a source subtask whose watermark is ahead
   * of the group's minimum by more than `maxDriftMs` pauses until the others catch up.
   */
  withWatermarkAlignment(group: string, maxDriftMs: number): WatermarkStrategy<T> {
    if (!(maxDriftMs >= 0))
      throw new InvalidArgumentError(`the maximum drift must be >= 0, got ${maxDriftMs}`);
    return new WatermarkStrategy<T>(
      this.generatorFactory,
      this.timestampAssigner,
      this.idleTimeoutMs,
      { group, maxDriftMs },
      this.emitsWatermarks,
    );
  }

  /** @internal a generator for one split, with idleness applied. */
  createGenerator(ctx: WatermarkGeneratorContext): WatermarkGenerator<T> {
    const g = this.generatorFactory(ctx);
    return this.idleTimeoutMs === undefined
      ? g
      : new WatermarksWithIdleness(g, this.idleTimeoutMs, ctx.clock);
  }
}
