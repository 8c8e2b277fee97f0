/**
 * Functions evaluated when a window fires: the full {@link ProcessWindowFunction} (all elements, or
 * the one pre-aggregated value when combined with `reduce`/`aggregate`), the legacy
 * {@link WindowFunction}, and their non-keyed (`windowAll`) forms.
 */
import type {
  AggregatingState,
  AggregatingStateDescriptor,
  ListState,
  ListStateDescriptor,
  MapState,
  MapStateDescriptor,
  ReducingState,
  ReducingStateDescriptor,
  ValueState,
  ValueStateDescriptor,
} from '../../state/descriptors.js';
import type { Key } from '../../state/hash.js';
import type { KeyedStateBackend } from '../../state/keyed-backend.js';
import {
  AbstractRichFunction,
  type Collector,
  type RichFunction,
  type RuntimeContext,
} from '../functions.js';
import type { OutputTag } from '../output-tag.js';
import type { Window } from './windows.js';

/** Keyed state by descriptor (Flink's `KeyedStateStore`). */
export interface KeyedStateStore {
  getState<T>(descriptor: ValueStateDescriptor<T>): ValueState<T>;
  getListState<T>(descriptor: ListStateDescriptor<T>): ListState<T>;
  getMapState<UK extends Key, UV>(descriptor: MapStateDescriptor<UK, UV>): MapState<UK, UV>;
  getReducingState<T>(descriptor: ReducingStateDescriptor<T>): ReducingState<T>;
  getAggregatingState<IN, ACC, OUT>(
    descriptor: AggregatingStateDescriptor<IN, ACC, OUT>,
  ): AggregatingState<IN, OUT>;
}

/** @internal keyed state of the current key, not scoped to a window (a window function's `globalState`). */
export class GlobalStateStore implements KeyedStateStore {
  constructor(private readonly backend: () => KeyedStateBackend) {}
  getState<T>(d: ValueStateDescriptor<T>): ValueState<T> {
    return this.backend().getState(d);
  }
  getListState<T>(d: ListStateDescriptor<T>): ListState<T> {
    return this.backend().getState(d);
  }
  getMapState<UK extends Key, UV>(d: MapStateDescriptor<UK, UV>): MapState<UK, UV> {
    return this.backend().getState(d);
  }
  getReducingState<T>(d: ReducingStateDescriptor<T>): ReducingState<T> {
    return this.backend().getState(d);
  }
  getAggregatingState<IN, ACC, OUT>(d: AggregatingStateDescriptor<IN, ACC, OUT>): AggregatingState<IN, OUT> {
    return this.backend().getState(d);
  }
}

/** What a {@link ProcessWindowFunction} sees of the window being evaluated. */
export interface ProcessWindowContext<W extends Window> {
  /** The window being evaluated (after merging, for session windows). */
  readonly window: W;
  /** The current processing time. */
  currentProcessingTime(): number;
  /** The current watermark of the operator. */
  currentWatermark(): number;
  /**
   * State of the current key and window (not available with merging windows); clear it in
   * `clear`.
   */
  windowState(): KeyedStateStore;
  /** State of the current key, across windows. */
  globalState(): KeyedStateStore;
  /** Emits to a side output (with the window's `maxTimestamp`). */
  output<X>(tag: OutputTag<X>, value: X): void;
}

/** A window function that sees all elements of the window, its key and its context. */
export interface ProcessWindowFunctionLike<IN, OUT, K, W extends Window> extends RichFunction {
  /** Evaluates the window: emit any number of results with `out.collect`. */
  process(key: K, context: ProcessWindowContext<W>, elements: Iterable<IN>, out: Collector<OUT>): void;
  /** Called when the window is removed (at `maxTimestamp + allowedLateness`): clear window state. */
  clear?(context: ProcessWindowContext<W>): void;
}

/** Flink's `ProcessWindowFunction`, as a class to extend. */
export abstract class ProcessWindowFunction<IN, OUT, K, W extends Window>
  extends AbstractRichFunction
  implements ProcessWindowFunctionLike<IN, OUT, K, W>
{
  abstract process(
    key: K,
    context: ProcessWindowContext<W>,
    elements: Iterable<IN>,
    out: Collector<OUT>,
  ): void;
  /** Called when the window is removed; clear per-window state here. */
  clear(_context: ProcessWindowContext<W>): void {}
}

/** Flink's legacy `WindowFunction`: key, window and elements. */
export type WindowFunction<IN, OUT, K, W extends Window> =
  | ((key: K, window: W, input: Iterable<IN>, out: Collector<OUT>) => void)
  | (RichFunction & { apply(key: K, window: W, input: Iterable<IN>, out: Collector<OUT>): void });

/** What a {@link ProcessAllWindowFunction} sees (no key). */
export type ProcessAllWindowContext<W extends Window> = ProcessWindowContext<W>;

/** A window function of a non-keyed (`windowAll`) window. */
export interface ProcessAllWindowFunctionLike<IN, OUT, W extends Window> extends RichFunction {
  /** Evaluates the window. */
  process(context: ProcessAllWindowContext<W>, elements: Iterable<IN>, out: Collector<OUT>): void;
  /** Called when the window is removed. */
  clear?(context: ProcessAllWindowContext<W>): void;
}

/** Flink's `ProcessAllWindowFunction`, as a class to extend. */
export abstract class ProcessAllWindowFunction<IN, OUT, W extends Window>
  extends AbstractRichFunction
  implements ProcessAllWindowFunctionLike<IN, OUT, W>
{
  abstract process(context: ProcessAllWindowContext<W>, elements: Iterable<IN>, out: Collector<OUT>): void;
  /** Called when the window is removed; clear per-window state here. */
  clear(_context: ProcessAllWindowContext<W>): void {}
}

/** Flink's legacy `AllWindowFunction`: window and elements. */
export type AllWindowFunction<IN, OUT, W extends Window> =
  | ((window: W, input: Iterable<IN>, out: Collector<OUT>) => void)
  | (RichFunction & { apply(window: W, input: Iterable<IN>, out: Collector<OUT>): void });

/** Forwards the lifecycle hooks of a wrapped function object. */
abstract class Delegating implements RichFunction {
  constructor(protected readonly inner: unknown) {}
  setRuntimeContext(rc: RuntimeContext): void {
    const f = this.inner as { setRuntimeContext?(rc: RuntimeContext): void } | null;
    if (typeof f === 'object' && f !== null) f.setRuntimeContext?.(rc);
  }
  open(rc: RuntimeContext): void {
    const f = this.inner as RichFunction | null;
    if (typeof f === 'object' && f !== null) f.open?.(rc);
  }
  close(): void {
    const f = this.inner as RichFunction | null;
    if (typeof f === 'object' && f !== null) f.close?.();
  }
}

/** @internal a {@link WindowFunction} as a process window function. */
export class WindowFunctionAdapter<IN, OUT, K, W extends Window>
  extends Delegating
  implements ProcessWindowFunctionLike<IN, OUT, K, W>
{
  private readonly call: (key: K, window: W, input: Iterable<IN>, out: Collector<OUT>) => void;
  constructor(fn: WindowFunction<IN, OUT, K, W>) {
    super(fn);
    this.call = typeof fn === 'function' ? fn : (k, w, i, o) => fn.apply(k, w, i, o);
  }
  process(key: K, context: ProcessWindowContext<W>, elements: Iterable<IN>, out: Collector<OUT>): void {
    this.call(key, context.window, elements, out);
  }
}

/** @internal a {@link ProcessAllWindowFunctionLike} as a keyed process window function. */
export class ProcessAllWindowFunctionAdapter<IN, OUT, W extends Window>
  extends Delegating
  implements ProcessWindowFunctionLike<IN, OUT, unknown, W>
{
  constructor(private readonly fn: ProcessAllWindowFunctionLike<IN, OUT, W>) {
    super(fn);
  }
  process(
    _key: unknown,
    context: ProcessWindowContext<W>,
    elements: Iterable<IN>,
    out: Collector<OUT>,
  ): void {
    this.fn.process(context, elements, out);
  }
  clear(context: ProcessWindowContext<W>): void {
    this.fn.clear?.(context);
  }
}

/** @internal an {@link AllWindowFunction} as a keyed process window function. */
export class AllWindowFunctionAdapter<IN, OUT, W extends Window>
  extends Delegating
  implements ProcessWindowFunctionLike<IN, OUT, unknown, W>
{
  private readonly call: (window: W, input: Iterable<IN>, out: Collector<OUT>) => void;
  constructor(fn: AllWindowFunction<IN, OUT, W>) {
    super(fn);
    this.call = typeof fn === 'function' ? fn : (w, i, o) => fn.apply(w, i, o);
  }
  process(
    _key: unknown,
    context: ProcessWindowContext<W>,
    elements: Iterable<IN>,
    out: Collector<OUT>,
  ): void {
    this.call(context.window, elements, out);
  }
}
