import { InvalidArgumentError } from '../../state/errors.js';
import {
  END_OF_INPUT,
  type InputStatus,
  MORE_AVAILABLE,
  NOTHING_AVAILABLE,
  type ReaderOutput,
  type Source,
  type SourceReader,
  type SourceReaderContext,
  type SourceSplit,
} from './source.js';

/** The one split of an async-iterable source: how many items were consumed. */
export interface IterableSplit extends SourceSplit {
  consumed: number;
}

/**
 * A non-parallel source of the items of an async (or sync) iterable.
 * NOTE: its position is the number of items consumed; a restored reader re-creates the iterable
 * with the factory and skips that many, so it is only exactly-once if the factory yields the same
 * sequence again. An iterable object (not a factory) can be read once.
 */
export class AsyncIterableSource<T> implements Source<T, IterableSplit> {
  readonly boundedness: 'bounded' | 'unbounded';
  readonly maxParallelism = 1;
  private used = false;
  constructor(
    private readonly iterable: AsyncIterable<T> | Iterable<T> | (() => AsyncIterable<T> | Iterable<T>),
    options: { bounded?: boolean } = {},
  ) {
    this.boundedness = options.bounded === false ? 'unbounded' : 'bounded';
  }
  createSplits(): IterableSplit[] {
    return [{ splitId: 'iterable', consumed: 0 }];
  }
  createReader(ctx: SourceReaderContext): SourceReader<T, IterableSplit> {
    let iterable: AsyncIterable<T> | Iterable<T>;
    if (typeof this.iterable === 'function') iterable = this.iterable();
    else {
      if (this.used)
        throw new InvalidArgumentError(
          'this async iterable was already read; pass a function that creates it to read it again',
        );
      this.used = true;
      iterable = this.iterable;
    }
    return new AsyncIterableReader(iterable, ctx);
  }
}

class AsyncIterableReader<T> implements SourceReader<T, IterableSplit> {
  private iterator: AsyncIterator<T> | Iterator<T> | undefined;
  private readonly buffer: T[] = [];
  private pending = false;
  private done = false;
  private failure: { error: unknown } | undefined;
  private split: IterableSplit | undefined;
  private toSkip = 0;

  constructor(
    private readonly iterable: AsyncIterable<T> | Iterable<T>,
    private readonly ctx: SourceReaderContext,
  ) {}

  addSplits(splits: readonly IterableSplit[]): void {
    for (const s of splits) {
      this.split = { ...s };
      this.toSkip = s.consumed;
    }
  }

  pollNext(output: ReaderOutput<T>): InputStatus {
    if (this.split === undefined) return END_OF_INPUT;
    if (this.failure !== undefined) throw this.failure.error;
    const item = this.buffer.shift();
    if (item !== undefined || this.buffer.length > 0) {
      this.split.consumed++;
      output.forSplit(this.split.splitId).collect(item as T);

      return MORE_AVAILABLE;
    }
    if (this.done) return END_OF_INPUT;
    this.fetch();
    return this.buffer.length > 0 || this.done ? MORE_AVAILABLE : NOTHING_AVAILABLE;
  }

  private fetch(): void {
    if (this.pending) return;
    if (this.iterator === undefined) {
      const it = this.iterable as Partial<AsyncIterable<T> & Iterable<T>>;
      this.iterator = it[Symbol.asyncIterator]?.() ?? it[Symbol.iterator]!();
    }
    const iterator = this.iterator;
    // Synchronous iterators are drained without promises.
    for (;;) {
      const r = iterator.next();
      if (typeof (r as Promise<IteratorResult<T>>).then === 'function') {
        this.pending = true;
        (r as Promise<IteratorResult<T>>).then(
          (res) => {
            this.pending = false;
            this.accept(res);
            this.ctx.wakeUp();
          },
          (error: unknown) => {
            this.pending = false;
            this.failure = { error };
            this.ctx.wakeUp();
          },
        );
        return;
      }
      this.accept(r as IteratorResult<T>);
      if (this.buffer.length > 0 || this.done) return;
    }
  }

  private accept(res: IteratorResult<T>): void {
    if (res.done === true) this.done = true;
    else if (this.toSkip > 0) this.toSkip--;
    else this.buffer.push(res.value);
  }

  snapshotState(): IterableSplit[] {
    return this.split === undefined ? [] : [{ ...this.split }];
  }

  close(): void {
    const it = this.iterator;
    if (it?.return !== undefined) {
      try {
        const r = it.return();
        if (r !== undefined && typeof (r as Promise<unknown>).then === 'function')
          (r as Promise<unknown>).catch(() => {});
      } catch {
        // closing an iterator is best-effort
      }
    }
  }
}
