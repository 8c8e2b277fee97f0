import {
  END_OF_INPUT,
  type InputStatus,
  MORE_AVAILABLE,
  type ReaderOutput,
  type Source,
  type SourceReader,
  type SourceSplit,
} from './source.js';

/** A range `[next, end)` of indices of a collection or sequence. */
export interface RangeSplit extends SourceSplit {
  next: number;
  readonly end: number;
}

/** Splits `[0, count)` into `n` contiguous ranges (the last ones may be empty). */
export function rangeSplits(count: number, n: number, prefix: string): RangeSplit[] {
  const out: RangeSplit[] = [];
  for (let i = 0; i < n; i++) {
    const from = Math.floor((i * count) / n);
    const to = Math.floor(((i + 1) * count) / n);
    out.push({ splitId: `${prefix}-${i}`, next: from, end: to });
  }
  return out;
}

/** Emits records `at(i)` for the indices of its range splits, one split after the other. */
export class RangeReader<T> implements SourceReader<T, RangeSplit> {
  protected splits: RangeSplit[] = [];
  /** Records emitted so far. */
  emitted = 0;
  constructor(
    protected readonly at: (index: number) => T,
    protected readonly timestampOf?: (value: T, index: number) => number | undefined,
  ) {}
  addSplits(splits: readonly RangeSplit[]): void {
    for (const s of splits) this.splits.push({ ...s });
  }
  /** True while some split has records left. */
  hasMore(): boolean {
    return this.splits.some((s) => s.next < s.end);
  }
  private out: ReaderOutput<T> | undefined;
  pollNext(output: ReaderOutput<T>): InputStatus {
    const split = this.splits[0];
    if (split === undefined) return END_OF_INPUT;
    if (split.next >= split.end) {
      output.releaseSplit(split.splitId);
      this.out = undefined;
      this.splits.shift();
      return this.splits.length === 0 ? END_OF_INPUT : MORE_AVAILABLE;
    }
    const out = this.out ?? (this.out = output.forSplit(split.splitId));
    const i = split.next++;
    const value = this.at(i);
    out.collect(value, this.timestampOf === undefined ? undefined : this.timestampOf(value, i));
    this.emitted++;
    return MORE_AVAILABLE;
  }
  snapshotState(): RangeSplit[] {
    return this.splits.map((s) => ({ ...s }));
  }
}

/**
 * A bounded source of the items of an array. Replayable: a split's position is an index.
 * NOTE: non-parallel by default, as Flink's `fromElements`; `parallel: true` splits the array.
 */
export class CollectionSource<T> implements Source<T, RangeSplit> {
  readonly boundedness = 'bounded' as const;
  readonly maxParallelism: number | undefined;
  constructor(
    readonly items: readonly T[],
    options: { parallel?: boolean } = {},
  ) {
    this.maxParallelism = options.parallel === true ? undefined : 1;
  }
  createSplits(parallelism: number): RangeSplit[] {
    return rangeSplits(this.items.length, parallelism, 'items');
  }
  createReader(): SourceReader<T, RangeSplit> {
    return new RangeReader((i) => this.items[i] as T);
  }
}
