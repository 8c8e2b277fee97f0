/**
 * Sliced window aggregation (Flink SQL's `SlicingWindowOperator` with its `SliceAssigners`): an
 * event-time tumbling or sliding window aggregation with an incremental reduce or aggregate
 * function keeps one accumulator per key and *slice*, a stretch of time of `gcd(size, slide)`, not
 * one per key and window. An element is added once, to its slice; a window's result merges its
 * slices when it fires. A sliding window of 10 s every 2 s thus adds each element to one
 * accumulator instead of five.
 *
 * Everything a user sees is that of {@link WindowOperator} with the default `EventTimeTrigger`: a
 * window fires when the watermark reaches its maxTimestamp, with that timestamp; its state is kept
 * until `maxTimestamp + allowedLateness`; an element added to a window the watermark has already
 * passed re-fires it at once (an updated result); an element for which every window is late (or
 * that falls in no window) is skipped, and then, if it is late itself, sent to the late side
 * output or counted in `numLateRecordsDropped`. Each key's results come in the window operator's
 * order; a slice is dropped with the last window that holds it.
 *
 * Timers: one per key for its next window end or cleanup (namespace {@link NEXT}), registered for
 * the earliest one that a new slice brings; when it fires, the key's windows are fired and
 * cleaned up up to the watermark and one timer is registered for what comes next (see
 * processKey). A watermark often passes several window ends, so this is a fraction of the window
 * operator's timer per key and window (and per cleanup). With a keyed backend that cannot list a
 * key's slices, the window operator's timers are used instead: one per key and window end
 * ({@link FIRE}) and one per key and cleanup time ({@link CLEANUP}).
 *
 * Why merging slices gives the window's result: a window's slices hold exactly the elements added
 * to the window, for an element goes to its slice only when one of its windows is not late, and a
 * window that was late then has been cleaned up and is never evaluated again. The reduce (or the
 * aggregate's `merge`) combines slices in time order, so it must be associative and commutative
 * (as for merging windows); with one slice per window (tumbling windows) the result is computed
 * exactly as the window operator computes it.
 *
 * Which windows take this path is decided in windowed-stream.ts (see {@link sliceShapeOf}); the
 * rest keep the window operator. State: the slices in the keyed state `slice-contents` (namespace:
 * the slice's index, `(end - offset) / slice`), timers in the timer service `slice-timers`; both
 * per key group, so checkpoints restore at any parallelism. The window
 * operator's layout (`window-contents` per window) is not read: a savepoint of it is refused with
 * an error, as Flink refuses to restore DataStream window state into SQL's sliced windows.
 */
import {
  type AggregatingState,
  AggregatingStateDescriptor,
  type ListState,
  type ListStateDescriptor,
  type MapState,
  type MapStateDescriptor,
  type ReducingState,
  ReducingStateDescriptor,
  type StateDescriptor,
  type ValueState,
  type ValueStateDescriptor,
} from '../../state/descriptors.js';
import { InvalidGraphError } from '../../state/errors.js';
import type { AggregateFunction, ReduceFunction } from '../../state/functions.js';
import type { Key } from '../../state/hash.js';
import type { MapKey } from '../../state/key-codec.js';
import type { KeyedStateBackend, Namespace, NamespaceEntries } from '../../state/keyed-backend.js';
import { IncompatibleCheckpointError } from '../../state/snapshot/format.js';
import type { Counter, InternalTimerService, Timer, Triggerable } from '../contract.js';
import { NO_TIMESTAMP } from '../contract.js';
import type { Collector, KeySelector, RuntimeContext } from '../functions.js';
import { closeFunction, OneInputStreamOperator, openFunction } from '../operator.js';
import type { OutputTag } from '../output-tag.js';
import { createRuntimeContext } from '../runtime-context.js';
import {
  SlidingEventTimeWindows,
  TumblingEventTimeWindows,
  type WindowAssigner,
  type WindowAssignerContext,
} from './assigners.js';
import type { Evictor } from './evictors.js';
import { EventTimeTrigger, type Trigger } from './triggers.js';
import {
  GlobalStateStore,
  type KeyedStateStore,
  type ProcessWindowContext,
  type ProcessWindowFunctionLike,
} from './window-functions.js';
import type { WindowContentsSpec } from './window-operator.js';
import { TimeWindow, type Window } from './windows.js';

/** The windows of a sliced aggregation: size, slide (= size when tumbling), offset; slices of `gcd`. */
export interface SliceShape {
  readonly size: number;
  readonly slide: number;
  readonly offset: number;
  /** Length of a slice: `gcd(size, slide)`. */
  readonly slice: number;
}

/**
 * Refuses, in the window operator's `open()`, a checkpoint whose state this sliced window
 * aggregation wrote (`slice-contents`): the window operator would not read it, and its windows
 * would be lost without a word.
 */
export function refuseSlicedState(
  ctx: { restored: boolean; describe(): string },
  backend: KeyedStateBackend,
): void {
  if (ctx.restored && backend.size(SLICE_CONTENTS) > 0)
    throw new IncompatibleCheckpointError(
      `${ctx.describe()}: the checkpoint holds the slices of a sliced window aggregation ('${SLICE_CONTENTS}'), which the window operator does not read (it keeps one accumulator per window). Restore it into the same job without disableSlicing() or preAggregate() on the window`,
    );
}

/** Name of the slices' state. */
export const SLICE_CONTENTS = 'slice-contents';
/** Name of the timer service. */
export const SLICE_TIMERS = 'slice-timers';
/** Name of the window operator's contents state (what a savepoint of it holds). */
const WINDOW_CONTENTS = 'window-contents';
/** Timer namespace of a window's end (its timestamp is the window's maxTimestamp). */
export const FIRE = 0;
/** Timer namespace of a window's cleanup (its timestamp is `maxTimestamp + allowedLateness`). */
export const CLEANUP = 1;
/**
 * Timer namespace of a key's next firing or cleanup (with a backend that lists a key's slices):
 * when it fires, every firing and cleanup of the key up to the watermark is done, in time order,
 * and one timer is registered for the key's next. See {@link SlicingWindowOperator.processKey}.
 */
export const NEXT = 2;

/**
 * NOTE: a window's firing looks up each of its slices; with a slice much shorter than the slide
 * (size and slide nearly coprime: 10 s every 3.001 s has slices of 1 ms) that costs more than
 * adding each element to its few windows, so such windows keep the window operator.
 */
const MAX_SLICES_PER_WINDOW = 64;

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/**
 * The slices of a window aggregation, or `undefined` if it keeps the window operator: slicing
 * takes event-time tumbling and sliding windows with the default trigger (`EventTimeTrigger`,
 * given or not), no evictor, and `reduce` or `aggregate` (with `merge` when a window has several
 * slices). `orderSensitive`: the reduce depends on the order of its elements (the built-in field
 * aggregations keep the first element's other fields), so a window of several slices keeps the
 * window operator, which reduces in arrival order.
 */
export function sliceShapeOf(
  assigner: WindowAssigner<unknown, Window>,
  trigger: Trigger<unknown, Window>,
  evictor: Evictor<unknown, Window> | undefined,
  contents: WindowContentsSpec<unknown>,
  orderSensitive: boolean,
): SliceShape | undefined {
  if (evictor !== undefined || contents.kind === 'list' || !(trigger instanceof EventTimeTrigger))
    return undefined;
  let size: number;
  let slide: number;
  let offset: number;
  // NOTE: these very classes: a subclass could assign windows its own way.
  const proto = Object.getPrototypeOf(assigner) as unknown;
  if (proto === TumblingEventTimeWindows.prototype) {
    const tumbling = assigner as TumblingEventTimeWindows;
    size = slide = tumbling.sizeMs;
    offset = tumbling.offsetMs;
  } else if (proto === SlidingEventTimeWindows.prototype) {
    const sliding = assigner as SlidingEventTimeWindows;
    size = sliding.sizeMs;
    slide = sliding.slideMs;
    offset = sliding.offsetMs;
  } else return undefined;
  const slice = gcd(size, slide);
  const perWindow = size / slice;
  if (perWindow > 1) {
    if (perWindow > MAX_SLICES_PER_WINDOW || orderSensitive) return undefined;
    if (contents.kind === 'aggregate' && typeof contents.aggregate.merge !== 'function') return undefined;
  }
  return { size, slide, offset, slice };
}

/** Everything a sliced window aggregation is built from (fresh copies per subtask). */
export interface SlicingWindowOperatorSpec<IN, K extends Key> {
  readonly shape: SliceShape;
  /** The window assigner (checks timestamps as the window operator does, names windows). */
  readonly assigner: WindowAssigner<IN, TimeWindow>;
  readonly allowedLatenessMs: number;
  readonly lateDataTag: OutputTag<IN> | undefined;
  readonly keySelector: KeySelector<IN, K>;
  readonly contents: WindowContentsSpec<IN>;
  /** Evaluates a fired window with its one aggregated value; `undefined` emits the value itself. */
  readonly fn: ProcessWindowFunctionLike<unknown, unknown, K, TimeWindow> | undefined;
}

/** The slice state: reducing, or aggregating with the accumulator as its result. */
interface SliceState {
  setNamespace(ns: Namespace): void;
  add(value: unknown): void;
  /** The reduced value or the accumulator. */
  get(): unknown;
  clear(): void;
}

/** Heap reducing and aggregating state: add, and say whether there was nothing before. */
interface AddReportingNew {
  addReportingNew(value: unknown): boolean;
}

/** Heap namespaced state: the current key's values by namespace, in one lookup. */
interface NamespacesOfCurrentKey {
  namespacesOfCurrentKey(): NamespaceEntries | undefined;
}

/** A keyed state store scoped to the key and a window (namespace `start:end`, as the window operator's). */
class PerWindowStateStore implements KeyedStateStore {
  window!: TimeWindow;
  private readonly handles = new Map<string, { kind: StateDescriptor['kind']; handle: unknown }>();
  constructor(private readonly backend: () => KeyedStateBackend) {}
  private state<S>(d: StateDescriptor): S {
    let cached = this.handles.get(d.name);
    if (cached === undefined || cached.kind !== d.kind) {
      cached = { kind: d.kind, handle: this.backend().getNamespacedState(d) };
      this.handles.set(d.name, cached);
    }
    const h = cached.handle as { setNamespace(ns: Namespace): void };
    h.setNamespace(this.window.namespace());
    return h as S;
  }
  getState<T>(d: ValueStateDescriptor<T>): ValueState<T> {
    return this.state(d);
  }
  getListState<T>(d: ListStateDescriptor<T>): ListState<T> {
    return this.state(d);
  }
  getMapState<UK extends Key, UV>(d: MapStateDescriptor<UK, UV>): MapState<UK, UV> {
    return this.state(d);
  }
  getReducingState<T>(d: ReducingStateDescriptor<T>): ReducingState<T> {
    return this.state(d);
  }
  getAggregatingState<IN, ACC, OUT>(d: AggregatingStateDescriptor<IN, ACC, OUT>): AggregatingState<IN, OUT> {
    return this.state(d);
  }
}

/** The context of the window function. */
class SliceProcessContext implements ProcessWindowContext<TimeWindow> {
  window!: TimeWindow;
  private readonly perWindow: PerWindowStateStore;
  private readonly global: GlobalStateStore;
  constructor(private readonly op: SlicingWindowOperator<Key, unknown>) {
    this.perWindow = new PerWindowStateStore(() => op.backend);
    this.global = new GlobalStateStore(() => op.backend);
  }
  currentProcessingTime(): number {
    return this.op.timers.currentProcessingTime();
  }
  currentWatermark(): number {
    return this.op.timers.currentWatermark();
  }
  windowState(): KeyedStateStore {
    this.perWindow.window = this.window;
    return this.perWindow;
  }
  globalState(): KeyedStateStore {
    return this.global;
  }
  output<X>(tag: OutputTag<X>, value: X): void {
    this.op.sideOutput(tag, value, this.window.maxTimestamp());
  }
}

/** @internal the sliced window aggregation (see the module comment). */
export class SlicingWindowOperator<K extends Key, IN, OUT = unknown>
  extends OneInputStreamOperator<IN, OUT>
  implements Triggerable<Key, number>, Collector<OUT>
{
  /** @internal */ backend!: KeyedStateBackend;
  /** @internal */ timers!: InternalTimerService<number>;
  /**
   * @internal (tests) false: operators opened from now on do as with a backend that cannot list a
   * key's slices (a timer per key and window end, one lookup per slice).
   */
  static listKeySlices = true;

  private readonly size: number;
  private readonly slide: number;
  private readonly offset: number;
  /** Length of a slice. */
  private readonly g: number;
  /** Slices of a window. */
  private readonly perWindow: number;
  private readonly assigner: WindowAssigner<IN, TimeWindow>;
  private readonly allowedLateness: number;
  private readonly lateDataTag: OutputTag<IN> | undefined;
  private readonly keySelector: KeySelector<IN, K>;
  private readonly reduce: ReduceFunction<unknown> | undefined;
  private readonly aggregate: AggregateFunction<IN, unknown, unknown> | undefined;
  private readonly fn: ProcessWindowFunctionLike<unknown, unknown, K, TimeWindow> | undefined;
  private readonly descriptor: StateDescriptor;

  private slices!: SliceState;
  /** The slice state's one-lookup add, when the backend has it. */
  private adder: AddReportingNew | undefined;
  /** The slice state's values of the current key in one lookup, when the backend has it. */
  private reader: NamespacesOfCurrentKey | undefined;
  /** The watermark of the keys in {@link processed}. */
  private processedAt = Number.NaN;
  /** The keys whose firings and cleanups up to the watermark are done (see processKey). */
  private readonly processed = new Set<MapKey>();
  /**
   * The current key's slice indices, ascending, and their first and last window ends (see
   * processKey): the first {@link nIndices} entries. NOTE: a count, not the arrays' length, so
   * that the arrays keep their storage from key to key (a length set to 0 lets it go).
   */
  private readonly indices: number[] = [];
  private readonly firstEnds: number[] = [];
  private readonly lastEnds: number[] = [];
  private nIndices = 0;
  /** The current key's slices while processKey runs (read and cleared through it). */
  private keySlices: NamespaceEntries | undefined = undefined;
  private numLateRecordsDropped!: Counter;
  private numLateRecordsToSideOutput!: Counter;
  private runtimeContext!: RuntimeContext;
  private processContext!: SliceProcessContext;
  private readonly assignerContext: WindowAssignerContext = {
    getCurrentProcessingTime: () => this.timers.currentProcessingTime(),
  };

  // The slice of the last element (most elements fall in the slice of the one before).
  /** Start and end of the slice (an empty range at first). */
  private sStart = Number.POSITIVE_INFINITY;
  private sEnd = Number.NEGATIVE_INFINITY;
  /** Its index (namespace of its state). */
  private sIndex = 0;
  /** Start of the latest and of the earliest window holding the slice. */
  private sLastWindow = 0;
  private sFirstWindow = 0;
  /** maxTimestamp of the earliest window holding the slice (-Infinity: in no window). */
  private sFirstMax = Number.NEGATIVE_INFINITY;
  /** Cleanup time of the latest window holding the slice (-Infinity: in no window). */
  private sLastCleanup = Number.NEGATIVE_INFINITY;

  /** The window last given to the window function, and recent ones by start. */
  private lastWindow: TimeWindow | undefined = undefined;
  private readonly windowRing: (TimeWindow | undefined)[] = new Array(64).fill(undefined);
  /** Timestamp of what the window function emits (the window's maxTimestamp). */
  private emitTimestamp = NO_TIMESTAMP;
  /** What user code runs now, for error messages. */
  private stage = 'window operator';

  constructor(spec: SlicingWindowOperatorSpec<IN, K>) {
    super();
    const s = spec.shape;
    this.size = s.size;
    this.slide = s.slide;
    this.offset = s.offset;
    this.g = s.slice;
    this.perWindow = s.size / s.slice;
    this.assigner = spec.assigner;
    this.allowedLateness = spec.allowedLatenessMs;
    this.lateDataTag = spec.lateDataTag;
    this.keySelector = spec.keySelector;
    this.fn = spec.fn;
    const c = spec.contents;
    if (c.kind === 'list')
      throw new InvalidGraphError('a sliced window aggregation needs reduce or aggregate');
    if (c.kind === 'reduce') {
      this.reduce = c.reduce as ReduceFunction<unknown>;
      this.aggregate = undefined;
      this.descriptor = new ReducingStateDescriptor(SLICE_CONTENTS, c.reduce);
    } else {
      const agg = c.aggregate as AggregateFunction<IN, unknown, unknown>;
      this.reduce = undefined;
      this.aggregate = agg;
      // NOTE: the state's result is the accumulator itself: slices are merged as accumulators,
      // and the window's result is computed from the merge.
      this.descriptor = new AggregatingStateDescriptor<IN, unknown, unknown>(SLICE_CONTENTS, {
        createAccumulator: () => agg.createAccumulator(),
        add: (v, acc) => agg.add(v, acc),
        getResult: (acc) => acc,
      });
    }
  }

  override open(): void {
    const ctx = this.ctx;
    if (ctx.keyedState === undefined)
      throw new InvalidGraphError(
        `${ctx.describe()}: a window operator needs a keyed input (keyBy() or windowAll())`,
      );
    this.backend = ctx.keyedState;
    // NOTE: by the restored state's names, not its size: counting entries would install every
    // restored key group now rather than when needed (see OperatorRuntime.deferRestore).
    if (ctx.restored && this.backend.stateNames().includes(WINDOW_CONTENTS))
      throw new IncompatibleCheckpointError(
        `${ctx.describe()}: the checkpoint holds window contents of the window operator of an earlier version ('${WINDOW_CONTENTS}' per window), which this sliced window aggregation does not read (it keeps one accumulator per slice). Restore it into the same job with .disableSlicing() on the window, which keeps the window operator and its state`,
      );
    this.slices = this.backend.getNamespacedState<SliceState>(this.descriptor);
    const adding = this.slices as unknown as Partial<AddReportingNew>;
    this.adder = typeof adding.addReportingNew === 'function' ? (adding as AddReportingNew) : undefined;
    const reading = this.slices as unknown as Partial<NamespacesOfCurrentKey>;
    this.reader =
      SlicingWindowOperator.listKeySlices && typeof reading.namespacesOfCurrentKey === 'function'
        ? (reading as NamespacesOfCurrentKey)
        : undefined;
    this.timers = ctx.getTimerService<number>(SLICE_TIMERS, this, (n) => n);
    this.numLateRecordsDropped = ctx.metrics.counter('numLateRecordsDropped');
    this.numLateRecordsToSideOutput = ctx.metrics.counter('numLateRecordsToSideOutput');
    this.processContext = new SliceProcessContext(this as unknown as SlicingWindowOperator<Key, unknown>);
    this.runtimeContext = createRuntimeContext(ctx);
    if (this.fn !== undefined)
      openFunction(this.fn, this.runtimeContext, (e) => this.userError(e, undefined, 'open()'));
  }

  override close(): void {
    if (this.fn !== undefined) closeFunction(this.fn);
  }

  /** @internal emits to a side output. */
  sideOutput<X>(tag: OutputTag<X>, value: X, timestamp: number): void {
    this.output.collectSide(tag, value, timestamp);
  }

  /** Collector of the window function. */
  collect(value: OUT): void {
    this.output.collect(value, this.emitTimestamp);
  }

  processElement(value: IN, timestamp: number): void {
    try {
      this.stage = 'key selector';
      this.backend.setCurrentKey(this.keySelector(value));
      if (!(timestamp >= this.sStart && timestamp < this.sEnd)) this.locate(value, timestamp);
      const wm = this.timers.currentWatermark();
      // NOTE: in no window (a gap between sliding windows), or every window late: skipped.
      if (this.sLastCleanup <= wm) {
        this.skipped(value, timestamp, wm);
        return;
      }
      this.slices.setNamespace(this.sIndex);
      this.stage = this.reduce === undefined ? 'aggregate function' : 'reduce function';
      let wasEmpty: boolean;
      if (this.adder !== undefined) wasEmpty = this.adder.addReportingNew(value);
      else {
        wasEmpty = this.slices.get() === undefined;
        this.slices.add(value);
      }
      // NOTE: a slice that had contents already registered the timers of its windows (those not
      // late then, so all not late now); only windows the watermark has passed need more.
      if (wasEmpty || this.sFirstMax <= wm) this.afterAdd(wasEmpty, wm);
    } catch (e) {
      throw this.userError(e, value, this.stage);
    }
  }

  /** Finds the slice of `timestamp` and its windows. */
  private locate(value: IN, timestamp: number): void {
    // NOTE: the assigner checks the timestamp (missing, not finite) with the window operator's words.
    this.stage = 'window assigner';
    this.assigner.assignWindows(value, timestamp, this.assignerContext);
    const g = this.g;
    const start = TimeWindow.getWindowStartWithOffset(timestamp, this.offset, g);
    this.sStart = start;
    this.sEnd = start + g;
    this.sIndex = this.indexOf(start + g);
    const size = this.size;
    const slide = this.slide;
    const last = TimeWindow.getWindowStartWithOffset(start, this.offset, slide);
    if (last <= start - size) {
      this.sFirstMax = this.sLastCleanup = Number.NEGATIVE_INFINITY;
      return;
    }
    const first = last - Math.floor((last - (start - size) - 1) / slide) * slide;
    this.sLastWindow = last;
    this.sFirstWindow = first;
    this.sFirstMax = first + size - 1;
    this.sLastCleanup = this.cleanupTime(last + size - 1);
  }

  /** An element whose windows are all late, or that is in none: dropped if it is late itself. */
  private skipped(value: IN, timestamp: number, wm: number): void {
    if (timestamp + this.allowedLateness > wm) return;
    if (this.lateDataTag !== undefined) {
      this.numLateRecordsToSideOutput.inc();
      this.output.collectSide(this.lateDataTag, value, timestamp);
    } else this.numLateRecordsDropped.inc();
  }

  /**
   * After an element was added to the current slice: registers the timers of its windows if the
   * slice was empty, and fires at once the windows the watermark has passed but not cleaned up,
   * latest first (as the window operator goes through an element's windows).
   */
  private afterAdd(wasEmpty: boolean, wm: number): void {
    const size = this.size;
    const first = this.sFirstWindow;
    const lateness = this.allowedLateness;
    const timers = this.timers;
    // NOTE: with a backend that lists a key's slices, one timer for the key's earliest new
    // firing or cleanup; the key's later ones follow from its slices (see processKey).
    const batched = this.reader !== undefined;
    let next = Number.POSITIVE_INFINITY;
    for (let ws = this.sLastWindow; ws >= first; ws -= this.slide) {
      const max = ws + size - 1;
      const cleanup = this.cleanupTime(max);
      if (cleanup <= wm) break;
      if (max > wm) {
        if (!wasEmpty) continue;
        if (batched) next = Math.min(next, max);
        else timers.registerEventTimeTimer(FIRE, max);
      } else this.fire(ws);
      if (lateness !== 0 && cleanup !== Number.POSITIVE_INFINITY) {
        if (!batched) timers.registerEventTimeTimer(CLEANUP, cleanup);
        else if (wasEmpty && cleanup < next) next = cleanup;
      }
    }
    if (next !== Number.POSITIVE_INFINITY) timers.registerEventTimeTimer(NEXT, next);
  }

  /**
   * The index of the slice ending at `end`: `(end - offset) / slice`, the namespace of its state.
   *
   * NOTE: a small integer for epoch-millisecond times and slices of a second or more (a 2 s slice
   * of today is about 9e8), which V8 keeps unboxed: no number is allocated per lookup, and maps
   * hash it fast.
   */
  private indexOf(end: number): number {
    return (end - this.offset) / this.g;
  }

  /** `maxTimestamp + allowedLateness` (+Infinity beyond safe integers, as the window operator). */
  private cleanupTime(max: number): number {
    const t = max + this.allowedLateness;
    return t > Number.MAX_SAFE_INTEGER ? Number.POSITIVE_INFINITY : t;
  }

  onEventTime(timer: Timer<Key, number>): void {
    try {
      const t = timer.timestamp;
      if (timer.namespace === NEXT) this.processKey(t);
      else if (timer.namespace === FIRE) {
        const ws = t + 1 - this.size;
        this.fire(ws);
        if (this.allowedLateness === 0) this.cleanup(ws);
      } else this.cleanup(t - this.allowedLateness + 1 - this.size);
    } catch (e) {
      throw this.userError(
        e,
        {
          key: timer.key,
          timer: timer.timestamp,
          kind: timer.namespace === FIRE ? 'end' : timer.namespace === CLEANUP ? 'cleanup' : 'next',
        },
        this.stage,
      );
    }
  }

  /**
   * The current key's firings (window ends) and cleanups from `from` up to the watermark, in time
   * order (a firing before a cleanup at the same time), then one timer for its next.
   *
   * NOTE: one timer per key and advance of the watermark instead of one per key and window: a
   * watermark often passes several window ends. Why every firing and cleanup happens exactly once:
   * a timer is registered (after the watermark) for the earliest firing or cleanup that new
   * contents bring, and after processing for the key's next one; so when a timer of the key fires,
   * everything of the key before its time is done, and everything from it up to the watermark is
   * done now. The key's later timers in the same advance (left from earlier registrations) find
   * it in `processed`; those of a later advance find nothing due before their time. The key's
   * results come in the window operator's order; those of different keys in one advance of the
   * watermark come key by key (the window operator's come window by window).
   */
  private processKey(from: number): void {
    const wm = this.timers.currentWatermark();
    if (wm !== this.processedAt) {
      this.processed.clear();
      this.processedAt = wm;
    }
    const mk = this.backend.mapKey;
    if (this.processed.has(mk)) return;
    this.processed.add(mk);
    try {
      if (!this.loadIndices()) return;
      const size = this.size;
      const slide = this.slide;
      const lateness = this.allowedLateness;
      const inf = Number.POSITIVE_INFINITY;
      // The next window ends with contents for a firing and for a cleanup.
      let f = this.nextWindowEnd(this.windowEndFrom(from + 1));
      let c = lateness === 0 ? inf : this.nextWindowEnd(this.windowEndFrom(from + 1 - lateness));
      for (;;) {
        const fireAt = f - 1;
        const cleanAt = c === inf ? inf : this.cleanupTime(c - 1);
        const due = Math.min(fireAt, cleanAt);
        if (due === inf || due > wm) {
          if (due !== inf) this.timers.registerEventTimeTimer(NEXT, due);
          return;
        }
        if (fireAt <= cleanAt) {
          this.fire(f - size);
          if (lateness === 0) this.cleanup(f - size);
          f = this.nextWindowEnd(f + slide);
        } else {
          this.cleanup(c - size);
          c = this.nextWindowEnd(c + slide);
        }
      }
    } finally {
      this.keySlices = undefined;
    }
  }

  /** Loads the current key's slice indices, ascending, into `indices`; false if it has none. */
  private loadIndices(): boolean {
    const byIndex = this.reader!.namespacesOfCurrentKey();
    this.keySlices = byIndex;
    this.nIndices = 0;
    if (byIndex === undefined) return false;
    byIndex.forEach(this.pushIndex);
    const n = this.nIndices;
    const idx = this.indices;
    // NOTE: slices are mostly added in time order, so the indices mostly come sorted; an insertion
    // sort of a few numbers, in place (Array.prototype.sort would take the whole array).
    for (let k = 1; k < n; k++) {
      const x = idx[k]!;
      let j = k - 1;
      while (j >= 0 && idx[j]! > x) {
        idx[j + 1] = idx[j]!;
        j--;
      }
      idx[j + 1] = x;
    }
    // The first and last window end of each slice (-Infinity: in no window).
    const { size, slide, g, offset } = this;
    const firstEnds = this.firstEnds;
    const lastEnds = this.lastEnds;
    for (let k = 0; k < n; k++) {
      const start = idx[k]! * g + offset - g;
      // NOTE: with the slide as the slice (a common case), every slice starts a window.
      const last = slide === g ? start : TimeWindow.getWindowStartWithOffset(start, offset, slide);
      let first: number;
      let lastEnd: number;
      if (last <= start - size) first = lastEnd = Number.NEGATIVE_INFINITY;
      else {
        first =
          slide === g
            ? start - size + g + size
            : last - Math.floor((last - (start - size) - 1) / slide) * slide + size;
        lastEnd = last + size;
      }
      if (k < firstEnds.length) {
        firstEnds[k] = first;
        lastEnds[k] = lastEnd;
      } else {
        firstEnds.push(first);
        lastEnds.push(lastEnd);
      }
    }
    return n > 0;
  }
  private readonly pushIndex = (_v: unknown, i: Namespace): void => {
    const k = this.nIndices++;
    if (k < this.indices.length) this.indices[k] = i as number;
    else this.indices.push(i as number);
  };

  /** The smallest window end `>= t` (window ends are `offset + size` apart from multiples of the slide). */
  private windowEndFrom(t: number): number {
    const slide = this.slide;
    return t + ((((this.offset + this.size - t) % slide) + slide) % slide);
  }

  /**
   * The smallest window end `>= from` (itself a window end) whose window holds one of the slices
   * in `indices`, or +Infinity. NOTE: a later slice's windows end later, so the first slice whose
   * last window ends at `from` or after gives it.
   */
  private nextWindowEnd(from: number): number {
    const lastEnds = this.lastEnds;
    for (let k = 0; k < this.nIndices; k++) {
      if (lastEnds[k]! < from) continue;
      const first = this.firstEnds[k]!;
      return Math.max(first, from);
    }
    return Number.POSITIVE_INFINITY;
  }

  onProcessingTime(_timer: Timer<Key, number>): void {
    // NOTE: event-time windows register no processing-time timers.
  }

  /**
   * The window's result for the current key: its slices merged, oldest first, or `undefined` if
   * it holds nothing.
   */
  private windowResult(ws: number): unknown {
    const last = this.indexOf(ws + this.size);
    const slices = this.slices;
    this.stage = this.reduce === undefined ? 'aggregate function' : 'reduce function';
    const keySlices = this.keySlices;
    if (this.perWindow === 1) {
      let v: unknown;
      if (keySlices !== undefined) v = keySlices.get(last);
      else {
        slices.setNamespace(last);
        v = slices.get();
      }
      if (v === undefined || this.aggregate === undefined) return v;
      return this.aggregate.getResult(v);
    }
    // NOTE: the key's slices in one lookup, then one small-integer lookup each.
    const byIndex = keySlices ?? this.reader?.namespacesOfCurrentKey();
    if (this.reader !== undefined && byIndex === undefined) return undefined;
    let acc: unknown;
    let n = 0;
    for (let i = last - this.perWindow + 1; i <= last; i++) {
      let v: unknown;
      if (byIndex !== undefined) v = byIndex.get(i);
      else {
        slices.setNamespace(i);
        v = slices.get();
      }
      if (v === undefined) continue;
      if (n === 0) acc = v;
      else if (this.reduce !== undefined) acc = this.reduce(acc, v);
      else {
        const agg = this.aggregate!;
        // NOTE: merged into a fresh accumulator: merge may modify its first argument, and the
        // slices' accumulators are still needed by later windows.
        if (n === 1) acc = agg.merge!(agg.createAccumulator(), acc);
        acc = agg.merge!(acc, v);
      }
      n++;
    }
    if (n === 0 || this.aggregate === undefined) return acc;
    return this.aggregate.getResult(acc);
  }

  /** Evaluates the window starting at `ws` for the current key; emits its result with its maxTimestamp. */
  private fire(ws: number): void {
    const result = this.windowResult(ws);
    if (result === undefined) return;
    const max = ws + this.size - 1;
    this.stage = 'window function';
    if (this.fn === undefined) {
      this.output.collect(result as OUT, max);
      return;
    }
    this.emitTimestamp = max;
    const ctx = this.processContext;
    ctx.window = this.windowAt(ws);
    this.fn.process(
      this.backend.getCurrentKey() as K,
      ctx as unknown as ProcessWindowContext<TimeWindow>,
      [result],
      this as Collector<unknown>,
    );
  }

  /**
   * The window starting at `ws`. NOTE: windows are immutable: the keys that fire a window share
   * one object.
   */
  private windowAt(ws: number): TimeWindow {
    const w = this.lastWindow;
    if (w !== undefined && w.start === ws) return w;
    // NOTE: keys fire one after the other, each its windows of the watermark: a ring of recent
    // windows by their index (consecutive windows never share a slot).
    const slot = ((((ws - this.offset) / this.slide) % 64) + 64) % 64;
    let cached = this.windowRing[slot];
    if (cached === undefined || cached.start !== ws)
      this.windowRing[slot] = cached = new TimeWindow(ws, ws + this.size);
    return (this.lastWindow = cached);
  }

  /**
   * Removes the window starting at `ws` for the current key: the slices no later window holds
   * (those of its first slide), and the window function's state (its `clear`).
   */
  private cleanup(ws: number): void {
    const slices = this.slices;
    const first = this.indexOf(ws + this.g);
    const until = this.indexOf(ws + Math.min(this.slide, this.size));
    const byIndex = this.keySlices ?? this.reader?.namespacesOfCurrentKey();
    if (this.reader === undefined || byIndex !== undefined)
      for (let i = first; i <= until; i++) {
        if (byIndex !== undefined && !byIndex.has(i)) continue;
        slices.setNamespace(i);
        slices.clear();
      }
    if (this.fn?.clear !== undefined) {
      this.stage = 'window function clear()';
      const ctx = this.processContext;
      ctx.window = this.windowAt(ws);
      this.fn.clear(ctx as unknown as ProcessWindowContext<TimeWindow>);
    }
  }

  /**
   * @internal (test harness) the contents of `window` for the current key, as the window function
   * would get them (the reduced or aggregated value), or `undefined` if it holds nothing.
   */
  inspectContents(window: Window): unknown {
    if (!(window instanceof TimeWindow) || window.end - window.start !== this.size) return undefined;
    if (TimeWindow.getWindowStartWithOffset(window.start, this.offset, this.slide) !== window.start)
      return undefined;
    return this.windowResult(window.start);
  }

  /**
   * @internal (test harness) the windows of the current key that hold contents, among those of
   * the key's timers (every window with contents has its end or cleanup timer).
   */
  inspectWindows(timers: readonly { namespace: unknown; timestamp: number }[]): TimeWindow[] {
    if (this.reader !== undefined) {
      // The windows of the key's slices that are not cleaned up.
      const out: TimeWindow[] = [];
      try {
        if (!this.loadIndices()) return out;
        const wm = this.timers.currentWatermark();
        const size = this.size;
        for (
          let e = this.nextWindowEnd(this.windowEndFrom(-Number.MAX_SAFE_INTEGER));
          e !== Number.POSITIVE_INFINITY;
          e = this.nextWindowEnd(e + this.slide)
        )
          if (this.cleanupTime(e - 1) > wm && this.windowResult(e - size) !== undefined)
            out.push(new TimeWindow(e - size, e));
        return out;
      } finally {
        this.keySlices = undefined;
      }
    }
    const found = new Map<number, TimeWindow>();
    for (const t of timers) {
      const max = t.namespace === FIRE ? t.timestamp : t.timestamp - this.allowedLateness;
      const ws = max + 1 - this.size;
      if (!found.has(ws)) found.set(ws, new TimeWindow(ws, ws + this.size));
    }
    return [...found.values()].filter((w) => this.windowResult(w.start) !== undefined);
  }
}
