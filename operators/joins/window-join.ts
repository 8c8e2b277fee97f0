/**
 * Window joins and coGroup of two streams (Flink's `join(...).where(...).equalTo(...).window(...)`):
 * both inputs are tagged, unioned, keyed by their join key and windowed together; each window's
 * elements of the two sides are handed to the function — every pair (join) or both lists
 * (coGroup). Results carry the window's `maxTimestamp`, as in Flink.
 */
import type { Key } from '../../state/hash.js';
import type { DataStream } from '../data-stream.js';
import type { Collector, KeySelector, RichFunction, RuntimeContext } from '../functions.js';
import { closeFunction, openFunction } from '../operator.js';
import type { WindowAssigner } from '../windows/assigners.js';
import type { Evictor } from '../windows/evictors.js';
import type { Trigger } from '../windows/triggers.js';
import type { Window } from '../windows/windows.js';

/** Joins one pair. */
export type JoinFunction<A, B, R> =
  | ((first: A, second: B) => R)
  | (RichFunction & { join(first: A, second: B): R });
/** Joins one pair into any number of results. */
export type FlatJoinFunction<A, B, R> =
  | ((first: A, second: B, out: Collector<R>) => void)
  | (RichFunction & { join(first: A, second: B, out: Collector<R>): void });
/** Gets both sides of a key's window. */
export type CoGroupFunction<A, B, R> =
  | ((first: readonly A[], second: readonly B[], out: Collector<R>) => void)
  | (RichFunction & { coGroup(first: readonly A[], second: readonly B[], out: Collector<R>): void });

/** An element of either input, tagged with its side. */
export interface TaggedUnion<A, B> {
  readonly side: 1 | 2;
  readonly value: A | B;
}

/**
 * Calls `each` with the values of each side of a window's tagged elements, in order. NOTE: most
 * windows of a join hold one side only (a key seen on one input): its values are copied at their
 * exact size and the other side is an empty array without a backing store, instead of two arrays
 * grown by push.
 */
function bySide<A, B, R>(
  input: readonly TaggedUnion<A, B>[],
  each: (first: A[], second: B[], out: Collector<R>) => void,
  out: Collector<R>,
): void {
  let firstCount = 0;
  for (let i = 0; i < input.length; i++) if (input[i]!.side === 1) firstCount++;
  if (firstCount === input.length) each(input.map(untagged) as A[], [], out);
  else if (firstCount === 0) each([], input.map(untagged) as B[], out);
  else bothSides(input, each, out);
}

/** {@link bySide} for a window with elements of both sides. */
function bothSides<A, B, R>(
  input: readonly TaggedUnion<A, B>[],
  each: (first: A[], second: B[], out: Collector<R>) => void,
  out: Collector<R>,
): void {
  const firsts: A[] = [];
  const seconds: B[] = [];
  for (let i = 0; i < input.length; i++) {
    const t = input[i]!;
    if (t.side === 1) firsts.push(t.value as A);
    else seconds.push(t.value as B);
  }
  each(firsts, seconds, out);
}

const untagged = (t: TaggedUnion<unknown, unknown>): unknown => t.value;

/** Everything a windowed join or coGroup needs. */
interface WindowedSpec<A, B, K extends Key, W extends Window> {
  first: DataStream<A>;
  second: DataStream<B>;
  key1: KeySelector<A, K>;
  key2: KeySelector<B, K>;
  assigner: WindowAssigner<TaggedUnion<A, B>, W>;
}

/** `a.join(b)` / `a.coGroup(b)`: choose the key of the first input. */
export class TwoStreams<A, B, F extends 'join' | 'coGroup'> {
  constructor(
    private readonly kind: F,
    private readonly first: DataStream<A>,
    private readonly second: DataStream<B>,
  ) {}
  /** The key of the first input's elements. */
  where<K extends Key>(key: KeySelector<A, K>): TwoStreamsWhere<A, B, K, F> {
    return new TwoStreamsWhere(this.kind, this.first, this.second, key);
  }
}

/** Choose the key of the second input. */
export class TwoStreamsWhere<A, B, K extends Key, F extends 'join' | 'coGroup'> {
  constructor(
    private readonly kind: F,
    private readonly first: DataStream<A>,
    private readonly second: DataStream<B>,
    private readonly key1: KeySelector<A, K>,
  ) {}
  /** The key of the second input's elements (of the same type). */
  equalTo(key: KeySelector<B, K>): TwoStreamsKeyed<A, B, K, F> {
    return new TwoStreamsKeyed(this.kind, this.first, this.second, this.key1, key);
  }
}

/** Choose the windows. */
export class TwoStreamsKeyed<A, B, K extends Key, F extends 'join' | 'coGroup'> {
  constructor(
    private readonly kind: F,
    private readonly first: DataStream<A>,
    private readonly second: DataStream<B>,
    private readonly key1: KeySelector<A, K>,
    private readonly key2: KeySelector<B, K>,
  ) {}
  /** The windows in which elements of the two sides meet. */
  window<W extends Window>(
    assigner: WindowAssigner<unknown, W> | WindowAssigner<TaggedUnion<A, B>, W>,
  ): F extends 'join' ? WindowedJoin<A, B, K, W> : WindowedCoGroup<A, B, K, W> {
    const spec: WindowedSpec<A, B, K, W> = {
      first: this.first,
      second: this.second,
      key1: this.key1,
      key2: this.key2,
      assigner: assigner as WindowAssigner<TaggedUnion<A, B>, W>,
    };
    return (this.kind === 'join' ? new WindowedJoin(spec) : new WindowedCoGroup(spec)) as F extends 'join'
      ? WindowedJoin<A, B, K, W>
      : WindowedCoGroup<A, B, K, W>;
  }
}

/** Common settings of a windowed join or coGroup: trigger, evictor, lateness. */
abstract class WindowedTwoStreams<A, B, K extends Key, W extends Window> {
  private triggerSetting: Trigger<TaggedUnion<A, B>, W> | undefined;
  private evictorSetting: Evictor<TaggedUnion<A, B>, W> | undefined;
  private latenessMs = 0;
  constructor(private readonly spec: WindowedSpec<A, B, K, W>) {}
  /** A trigger other than the assigner's default. */
  trigger(trigger: Trigger<TaggedUnion<A, B>, W>): this {
    this.triggerSetting = trigger;
    return this;
  }
  /** An evictor applied before the function. */
  evictor(evictor: Evictor<TaggedUnion<A, B>, W>): this {
    this.evictorSetting = evictor;
    return this;
  }
  /** How long after a window's end late elements still update it. */
  allowedLateness(ms: number): this {
    this.latenessMs = ms;
    return this;
  }

  /** A window function over the tagged, keyed, windowed union of both inputs. */
  protected windowed<R>(
    name: string,
    userFn: unknown,
    each: (first: A[], second: B[], out: Collector<R>) => void,
  ): DataStream<R> {
    const { key1, key2, first, second, assigner } = this.spec;
    const one = first.map((value): TaggedUnion<A, B> => ({ side: 1, value })).name(`${name}: tag first`);
    const two = second.map((value): TaggedUnion<A, B> => ({ side: 2, value })).name(`${name}: tag second`);
    let w = one
      .union(two)
      .keyBy((t) => (t.side === 1 ? key1(t.value as A) : key2(t.value as B)))
      .window(assigner);
    if (this.triggerSetting !== undefined) w = w.trigger(this.triggerSetting);
    if (this.evictorSetting !== undefined) w = w.evictor(this.evictorSetting);
    if (this.latenessMs > 0) w = w.allowedLateness(this.latenessMs);
    return w
      .apply<R>({
        open: (ctx: RuntimeContext) =>
          openFunction(userFn, ctx, (e) => (e instanceof Error ? e : new Error(String(e)))),
        close: () => closeFunction(userFn),
        apply: (_key, _window, input, out) => {
          const tagged = Array.isArray(input) ? (input as readonly TaggedUnion<A, B>[]) : [...input];
          bySide(tagged, each, out);
        },
      })
      .name(name);
  }
}

/** A windowed join: `apply` (one result per pair) or `flatApply` (any number per pair). */
export class WindowedJoin<A, B, K extends Key, W extends Window> extends WindowedTwoStreams<A, B, K, W> {
  /** Emits `fn(a, b)` for every pair of the two sides in each key's window (an inner join). */
  apply<R>(fn: JoinFunction<A, B, R>): DataStream<R> {
    const join = typeof fn === 'function' ? fn : (a: A, b: B) => fn.join(a, b);
    return this.windowed<R>('windowJoin', fn, (firsts, seconds, out) => {
      for (const a of firsts) for (const b of seconds) out.collect(join(a, b));
    });
  }

  /** Like `apply`, with a function that emits any number of results per pair. */
  flatApply<R>(fn: FlatJoinFunction<A, B, R>): DataStream<R> {
    const join = typeof fn === 'function' ? fn : (a: A, b: B, out: Collector<R>) => fn.join(a, b, out);
    return this.windowed<R>('windowJoin', fn, (firsts, seconds, out) => {
      for (const a of firsts) for (const b of seconds) join(a, b, out);
    });
  }
}

/** A windowed coGroup: `apply` hands both sides of each key's window to the function. */
export class WindowedCoGroup<A, B, K extends Key, W extends Window> extends WindowedTwoStreams<A, B, K, W> {
  /** Calls `fn` with both sides of each key's window (one of them may be empty). */
  apply<R>(fn: CoGroupFunction<A, B, R>): DataStream<R> {
    const coGroup =
      typeof fn === 'function'
        ? fn
        : (a: readonly A[], b: readonly B[], out: Collector<R>) => fn.coGroup(a, b, out);
    return this.windowed<R>('coGroup', fn, coGroup);
  }
}
