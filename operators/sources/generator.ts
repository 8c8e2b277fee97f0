import { InvalidArgumentError } from '../../state/errors.js';
import { RangeReader, type RangeSplit, rangeSplits } from './collection.js';
import {
  type InputStatus,
  NOTHING_AVAILABLE,
  type ReaderOutput,
  type Source,
  type SourceReader,
  type SourceReaderContext,
} from './source.js';

/** Options of {@link GeneratorSource}. */
export interface GeneratorOptions<T> {
  /** Number of records (default: unbounded). */
  count?: number;
  /** Records per second over all subtasks (default: as fast as possible). */
  ratePerSecond?: number;
  /** Event time of record `index`, if the records carry one. */
  timestampOf?: (value: T, index: number) => number;
}

/**
 * A parallel source of `generate(index)` for index `0, 1, 2, ...` (Flink's `DataGeneratorSource`).
 * The index range is split among the subtasks; a split's position is the next index, so the source
 * is replayable. With a rate, each subtask emits its share of the rate (a token bucket on the
 * runtime's clock, so a manual clock in tests drives it).
 */
export class GeneratorSource<T> implements Source<T, RangeSplit> {
  readonly boundedness: 'bounded' | 'unbounded';
  readonly count: number;
  constructor(
    readonly generate: (index: number) => T,
    readonly options: GeneratorOptions<T> = {},
  ) {
    this.count = options.count ?? Number.MAX_SAFE_INTEGER;
    if (!(this.count >= 0) || !Number.isInteger(this.count))
      throw new InvalidArgumentError(`generator count must be a non-negative integer, got ${options.count}`);
    if (options.ratePerSecond !== undefined && !(options.ratePerSecond > 0))
      throw new InvalidArgumentError(
        `generator ratePerSecond must be positive, got ${options.ratePerSecond}`,
      );
    this.boundedness = options.count === undefined ? 'unbounded' : 'bounded';
  }
  createSplits(parallelism: number): RangeSplit[] {
    return rangeSplits(this.count, parallelism, 'generator');
  }
  createReader(ctx: SourceReaderContext): SourceReader<T, RangeSplit> {
    const reader = new RangeReader<T>(this.generate, this.options.timestampOf);
    const rate = this.options.ratePerSecond;
    return rate === undefined ? reader : new RateLimitedReader(reader, rate / ctx.info.parallelism, ctx);
  }
}

/** Limits a reader to `ratePerSecond` records per second of processing time. */
class RateLimitedReader<T> implements SourceReader<T, RangeSplit> {
  private start = Number.NaN;
  private emitted = 0;
  constructor(
    private readonly inner: RangeReader<T>,
    private readonly ratePerSecond: number,
    private readonly ctx: SourceReaderContext,
  ) {}
  addSplits(splits: readonly RangeSplit[]): void {
    this.inner.addSplits(splits);
  }
  pollNext(output: ReaderOutput<T>): InputStatus {
    const now = this.ctx.clock.now();
    if (Number.isNaN(this.start)) this.start = now;
    const allowed = Math.floor(((now - this.start) * this.ratePerSecond) / 1000) + 1;
    if (this.emitted >= allowed && this.inner.hasMore()) {
      this.ctx.wakeAt(this.start + Math.ceil((this.emitted * 1000) / this.ratePerSecond));
      return NOTHING_AVAILABLE;
    }
    const status = this.inner.pollNext(output);
    this.emitted = this.inner.emitted;
    return status;
  }
  snapshotState(): RangeSplit[] {
    return this.inner.snapshotState();
  }
}
