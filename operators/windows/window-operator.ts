/**
 * The window operator (Flink's `WindowOperator` and `EvictingWindowOperator`): assigns each element
 * to windows, keeps window contents in keyed state namespaced by window, asks the trigger when to
 * fire and purge, evaluates the window function, and cleans a window up at its cleanup time
 * (`maxTimestamp + allowedLateness` in event time, `maxTimestamp` in processing time).
 *
 * Lateness, exactly as Flink: a window is late when it is in event time and its cleanup time is
 * <= the current watermark; an element is skipped when every window it is assigned to is late, and
 * then, if it is late itself (`timestamp + allowedLateness <= watermark`), it goes to the late-data
 * side output if one is set, or else is counted in `numLateRecordsDropped`.
 */
import {
  type AggregatingState,
  AggregatingStateDescriptor,
  type ListState,
  ListStateDescriptor,
  type MapState,
  type MapStateDescriptor,
  type ReducingState,
  ReducingStateDescriptor,
  type StateDescriptor,
  type ValueState,
  ValueStateDescriptor,
} from '../../state/descriptors.js';
import { InvalidArgumentError, InvalidGraphError, StateError, TidemarkError } from '../../state/errors.js';
import type { AggregateFunction, ReduceFunction } from '../../state/functions.js';
import { describeValue, type Key } from '../../state/hash.js';
import type { KeyedStateBackend, Namespace } from '../../state/keyed-backend.js';
import { IncompatibleCheckpointError } from '../../state/snapshot/format.js';
import type { Counter, InternalTimerService, MetricGroup, Timer, Triggerable } from '../contract.js';
import { NO_TIMESTAMP } from '../contract.js';
import type { Collector, KeySelector, RuntimeContext } from '../functions.js';
import { closeFunction, OneInputStreamOperator, openFunction } from '../operator.js';
import type { OutputTag } from '../output-tag.js';
import { createRuntimeContext } from '../runtime-context.js';
import {
  GlobalWindows,
  MergingWindowAssigner,
  type WindowAssigner,
  type WindowAssignerContext,
} from './assigners.js';
import type { Evictor, EvictorContext, TimestampedValue } from './evictors.js';
import { MergingWindowSet, type MergingWindowSetState } from './merging-window-set.js';
import {
  hasKeys,
  type SessionHost,
  SessionWindows,
  sessionFastPathFor,
  sessionWindowSettings,
} from './session-windows.js';
import { refuseSlicedState } from './slicing-window-operator.js';
import {
  EventTimeTrigger,
  isFire,
  isPurge,
  type OnMergeContext,
  type Trigger,
  type TriggerResult,
} from './triggers.js';
import {
  GlobalStateStore,
  type KeyedStateStore,
  type ProcessWindowContext,
  type ProcessWindowFunctionLike,
} from './window-functions.js';
import { GlobalWindow, type TimeWindow, Window } from './windows.js';

/** How window contents are kept: reduced, aggregated, or as the list of elements. */
export type WindowContentsSpec<IN> =
  | { readonly kind: 'reduce'; readonly reduce: ReduceFunction<IN> }
  | { readonly kind: 'aggregate'; readonly aggregate: AggregateFunction<IN, unknown, unknown> }
  | { readonly kind: 'list' };

/** Everything a window operator is built from (fresh copies per subtask). */
export interface WindowOperatorSpec<IN, K extends Key, W extends Window> {
  readonly assigner: WindowAssigner<IN, W>;
  readonly trigger: Trigger<IN, W>;
  readonly evictor: Evictor<IN, W> | undefined;
  readonly allowedLatenessMs: number;
  readonly lateDataTag: OutputTag<IN> | undefined;
  readonly keySelector: KeySelector<IN, K>;
  readonly contents: WindowContentsSpec<IN>;
  /**
   * Evaluates a fired window; `undefined` emits the reduced/aggregated value itself. With reduce
   * or aggregate contents it receives one element, the pre-aggregated value.
   */
  readonly fn: ProcessWindowFunctionLike<unknown, unknown, K, W> | undefined;
}

/** The state of a window's contents, whatever its kind. */
interface ContentsState {
  setNamespace(ns: Namespace): void;
  add(value: unknown): void;
  get(): unknown;
  clear(): void;
}

/** Heap reducing, aggregating and list state: add, and say whether there was nothing before. */
interface AddReportingNew {
  addReportingNew(value: unknown): boolean;
}

/** Heap reducing, aggregating and list state: read what `get()` returns and clear it at once. */
interface GetAndClear {
  getAndClear(): unknown;
}

/** Heap reducing and aggregating state: merge a partial result, and say whether there was nothing before. */
interface MergesPartials {
  mergePartialReportingNew(partial: unknown): boolean;
}

/** Name of the window contents state (as in Flink). */
const CONTENTS = 'window-contents';
/** Name of the merging window set state (as in Flink). */
const MERGING_SET = 'merging-window-set';

/** A keyed state store whose state is scoped to the key and a window. */
class PerWindowStateStore implements KeyedStateStore {
  window!: Window;
  constructor(private readonly op: WindowOperator<Key, unknown, Window>) {}
  private state<S>(d: StateDescriptor): S {
    if (this.op.merging !== undefined)
      throw new StateError('Per-window state is not allowed when using merging windows.');
    const h = this.op.namespaced(d);
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

/** The context of triggers: timers and state of the current key and window. */
class WindowTriggerContext implements OnMergeContext {
  window!: Window;
  mergedWindows: readonly Window[] = [];
  /** The event-time timer the trigger registered last for `registeredWindow` (NaN: none or deleted since). */
  registeredTime = Number.NaN;
  registeredWindow: Window | undefined = undefined;
  constructor(private readonly op: WindowOperator<Key, unknown, Window>) {}
  getCurrentProcessingTime(): number {
    return this.op.timers.currentProcessingTime();
  }
  getCurrentWatermark(): number {
    return this.op.timers.currentWatermark();
  }
  getMetricGroup(): MetricGroup {
    return this.op.metricGroup();
  }
  registerProcessingTimeTimer(time: number): void {
    this.op.timers.registerProcessingTimeTimer(this.window, time);
  }
  registerEventTimeTimer(time: number): void {
    this.op.timers.registerEventTimeTimer(this.window, time);
    this.registeredTime = time;
    this.registeredWindow = this.window;
  }
  deleteProcessingTimeTimer(time: number): void {
    this.op.timers.deleteProcessingTimeTimer(this.window, time);
  }
  deleteEventTimeTimer(time: number): void {
    this.op.timers.deleteEventTimeTimer(this.window, time);
    this.registeredTime = Number.NaN;
  }
  getPartitionedState<T>(d: ValueStateDescriptor<T>): ValueState<T>;
  getPartitionedState<T>(d: ListStateDescriptor<T>): ListState<T>;
  getPartitionedState<UK extends Key, UV>(d: MapStateDescriptor<UK, UV>): MapState<UK, UV>;
  getPartitionedState<T>(d: ReducingStateDescriptor<T>): ReducingState<T>;
  getPartitionedState<IN, ACC, OUT>(d: AggregatingStateDescriptor<IN, ACC, OUT>): AggregatingState<IN, OUT>;
  getPartitionedState(d: StateDescriptor): unknown {
    const h = this.op.namespaced(d);
    h.setNamespace(this.window.namespace());
    return h;
  }
  mergePartitionedState<T>(d: ReducingStateDescriptor<T>): void;
  mergePartitionedState<T>(d: ListStateDescriptor<T>): void;
  mergePartitionedState<IN, ACC, OUT>(d: AggregatingStateDescriptor<IN, ACC, OUT>): void;
  mergePartitionedState(d: StateDescriptor): void {
    const merged = this.mergedWindows;
    if (merged.length === 0) return;
    const sources: Namespace[] = [];
    for (const w of merged) sources.push(w.namespace());
    this.op.backend.mergeNamespaces(d, this.window.namespace(), sources);
  }
}

/** The context of process window functions. */
class WindowProcessContext implements ProcessWindowContext<Window> {
  window!: Window;
  private readonly perWindow: PerWindowStateStore;
  private readonly global: GlobalStateStore;
  constructor(private readonly op: WindowOperator<Key, unknown, Window>) {
    this.perWindow = new PerWindowStateStore(op);
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

/** @internal the window operator; with an evictor it keeps every element (Flink's EvictingWindowOperator). */
export class WindowOperator<K extends Key, IN, W extends Window, OUT = unknown>
  extends OneInputStreamOperator<IN, OUT>
  implements Triggerable<Key, W>, Collector<OUT>, SessionHost
{
  /** @internal */ backend!: KeyedStateBackend;
  /** @internal */ timers!: InternalTimerService<W>;
  /** @internal set for merging (session) assigners. */
  readonly merging: MergingWindowAssigner<IN, W> | undefined;

  private readonly assigner: WindowAssigner<IN, W>;
  private readonly trigger: Trigger<IN, W>;
  private readonly evictor: Evictor<IN, W> | undefined;
  private readonly allowedLateness: number;
  private readonly lateDataTag: OutputTag<IN> | undefined;
  private readonly keySelector: KeySelector<IN, K>;
  private readonly spec: WindowContentsSpec<IN>;
  private readonly fn: ProcessWindowFunctionLike<unknown, unknown, K, W> | undefined;
  private readonly isEventTime: boolean;
  /** Descriptor of the contents state (an element list when there is an evictor). */
  private readonly contentsDescriptor: StateDescriptor;
  /** True when the contents are the list of elements (process/apply, or any evictor). */
  private readonly listContents: boolean;
  /** The trigger is the built-in EventTimeTrigger on event-time windows. */
  private readonly eventTimeTrigger: boolean;
  /** The trigger is the built-in EventTimeTrigger on non-merging windows (see addToWindows). */
  private readonly eventTimeFastPath: boolean;
  /** The contents, when the fast path adds to them with one lookup (see addToWindows). */
  private addReportingNew: AddReportingNew | undefined;
  /**
   * The contents, when a window that fires and is cleaned up by the same timer reads and clears
   * them with one lookup (see onTimer): not with an evictor, which writes back what it keeps.
   */
  private getAndClear: GetAndClear | undefined;

  private contents!: ContentsState;
  /** The merging window set, loaded per key (merging assigners only, not on the session fast path). */
  private mergingSet: MergingWindowSet<W> | undefined;
  /** The sessions, on the session fast path (see session-windows.ts). */
  private sessions: SessionWindows | undefined;
  private numLateRecordsDropped!: Counter;
  private numLateRecordsToSideOutput!: Counter;
  private runtimeContext!: RuntimeContext;
  private readonly handles = new Map<string, { kind: StateDescriptor['kind']; handle: ContentsState }>();
  private readonly triggerContext: WindowTriggerContext;
  private readonly processContext: WindowProcessContext;
  private readonly assignerContext: WindowAssignerContext = {
    getCurrentProcessingTime: () => this.timers.currentProcessingTime(),
  };
  private readonly evictorContext: EvictorContext = {
    getCurrentProcessingTime: () => this.timers.currentProcessingTime(),
    getCurrentWatermark: () => this.timers.currentWatermark(),
    getMetricGroup: () => this.ctx.metrics,
  };
  private readonly mergeFunction = (
    mergeResult: W,
    mergedWindows: readonly W[],
    stateWindowResult: W,
    mergedStateWindows: readonly W[],
  ): void => this.onWindowsMerged(mergeResult, mergedWindows, stateWindowResult, mergedStateWindows);
  /** Timestamp of what the window function emits (the window's maxTimestamp). */
  private emitTimestamp = NO_TIMESTAMP;
  /** @internal what user code runs now, for error messages. */
  stage = 'window operator';

  constructor(spec: WindowOperatorSpec<IN, K, W>) {
    super();
    this.assigner = spec.assigner;
    this.trigger = spec.trigger;
    this.evictor = spec.evictor;
    this.allowedLateness = spec.allowedLatenessMs;
    this.lateDataTag = spec.lateDataTag;
    this.keySelector = spec.keySelector;
    this.spec = spec.contents;
    this.fn = spec.fn;
    this.isEventTime = spec.assigner.isEventTime();
    this.merging = spec.assigner instanceof MergingWindowAssigner ? spec.assigner : undefined;
    this.listContents = spec.evictor !== undefined || spec.contents.kind === 'list';
    this.eventTimeTrigger = spec.trigger instanceof EventTimeTrigger && this.isEventTime;
    this.eventTimeFastPath = this.eventTimeTrigger && this.merging === undefined;
    this.contentsDescriptor = contentsDescriptor(spec.contents, spec.evictor !== undefined);
    const self = this as unknown as WindowOperator<Key, unknown, Window>;
    this.triggerContext = new WindowTriggerContext(self);
    this.processContext = new WindowProcessContext(self);
  }

  override open(): void {
    const ctx = this.ctx;
    if (ctx.keyedState === undefined)
      throw new InvalidGraphError(
        `${ctx.describe()}: a window operator needs a keyed input (keyBy() or windowAll())`,
      );
    this.backend = ctx.keyedState;
    refuseSlicedState(ctx, this.backend);
    if (this.openSessions()) {
      this.numLateRecordsDropped = ctx.metrics.counter('numLateRecordsDropped');
      this.numLateRecordsToSideOutput = ctx.metrics.counter('numLateRecordsToSideOutput');
      this.runtimeContext = createRuntimeContext(ctx);
      if (this.fn !== undefined)
        openFunction(this.fn, this.runtimeContext, (e) => this.userError(e, undefined, 'open()'));
      return;
    }
    this.contents = this.backend.getNamespacedState<ContentsState>(this.contentsDescriptor);
    const adding = this.contents as unknown as Partial<AddReportingNew>;
    this.addReportingNew =
      this.eventTimeFastPath && this.evictor === undefined && typeof adding.addReportingNew === 'function'
        ? (adding as AddReportingNew)
        : undefined;
    const taking = this.contents as unknown as Partial<GetAndClear>;
    this.getAndClear =
      this.evictor === undefined && typeof taking.getAndClear === 'function'
        ? (taking as GetAndClear)
        : undefined;
    if (this.merging !== undefined)
      this.mergingSet = new MergingWindowSet(
        this.merging as unknown as MergingWindowAssigner<unknown, W>,
        this.backend.getState(new ValueStateDescriptor<MergingWindowSetState<W>>(MERGING_SET)),
      );
    const assigner = this.assigner;
    this.timers = ctx.getTimerService<W>('window-timers', this, (w) =>
      (w instanceof Window ? w : assigner.restoreWindow(w)).namespace(),
    );
    this.numLateRecordsDropped = ctx.metrics.counter('numLateRecordsDropped');
    this.numLateRecordsToSideOutput = ctx.metrics.counter('numLateRecordsToSideOutput');
    this.runtimeContext = createRuntimeContext(ctx);
    if (this.fn !== undefined)
      openFunction(this.fn, this.runtimeContext, (e) => this.userError(e, undefined, 'open()'));
  }

  override close(): void {
    if (this.fn !== undefined) closeFunction(this.fn);
  }

  /**
   * Opens the session fast path if this operator can take it (see session-windows.ts); true if it
   * did. A restore keeps the path its state was written by: state of the general merging path
   * (an earlier version's, or written with the fast path off) stays on the general path, and state
   * of the fast path cannot be read by the general path.
   */
  private openSessions(): boolean {
    if (this.merging === undefined) return false;
    const backend = this.backend;
    const params = sessionFastPathFor(
      this.assigner as unknown as WindowAssigner<unknown, Window>,
      this.trigger as unknown as Trigger<unknown, Window>,
      this.evictor !== undefined,
      this.spec as WindowContentsSpec<unknown>,
    );
    const restoredSessions = this.ctx.restored && SessionWindows.hasState(backend);
    const restoredGeneral =
      this.ctx.restored && (hasKeys(backend, MERGING_SET) || hasKeys(backend, CONTENTS));
    // NOTE: the fast path changes session records in place, which needs a backend that keeps
    // values by reference (the heap backend; one that copies values in and out would lose the changes).
    const fast =
      params !== undefined &&
      backend.kind === 'heap' &&
      !restoredGeneral &&
      (sessionWindowSettings.fastPath || restoredSessions);
    if (!fast) {
      if (restoredSessions)
        throw new IncompatibleCheckpointError(
          `${this.ctx.describe()}: the restored session windows were kept by the session fast path (event-time session windows with the default trigger, no evictor, reduce or aggregate), which this operator no longer takes (${String(this.assigner)}, ${String(this.trigger)}${this.evictor === undefined ? '' : `, ${String(this.evictor)}`}, ${this.spec.kind})`,
        );
      return false;
    }
    const ctx = this.ctx;
    const sessions = new SessionWindows(
      this,
      backend,
      (target) => ctx.getTimerService<number>('session-timers', target, (ns) => ns),
      params,
      this.assigner as unknown as WindowAssigner<unknown, Window>,
      this.assignerContext,
      this.spec as WindowContentsSpec<unknown>,
      this.allowedLateness,
    );
    this.sessions = sessions;
    // NOTE: the operator's own uses of its timer service (watermark, processing time, for the
    // window function's context) go to the sessions' service.
    this.timers = sessions.timers as unknown as InternalTimerService<W>;
    return true;
  }

  /** @internal (session fast path) evaluates a fired session and emits the results. */
  emitSession(window: TimeWindow, contents: unknown): void {
    this.emitWindowContents(window as unknown as W, contents);
  }

  /** @internal (session fast path) the window function's clear() for a session cleaned up. */
  clearSession(window: TimeWindow): void {
    if (this.fn?.clear === undefined) return;
    this.stage = 'window function clear()';
    this.processContext.window = window;
    this.fn.clear(this.processContext as unknown as ProcessWindowContext<W>);
  }

  /** @internal (session fast path) wraps an error of a timer's firing. */
  timerError(e: unknown, timer: Timer<Key, unknown>): Error {
    return this.userError(
      e,
      { key: timer.key, window: `session ${String(timer.namespace)}`, timer: timer.timestamp },
      this.stage,
    );
  }

  /** @internal the metric group (for trigger contexts). */
  metricGroup(): MetricGroup {
    return this.ctx.metrics;
  }

  /** @internal a namespaced state handle by descriptor (cached by name, as the backend does). */
  namespaced(d: StateDescriptor): ContentsState {
    const cached = this.handles.get(d.name);
    if (cached !== undefined && cached.kind === d.kind) return cached.handle;
    // The backend validates (kind, namespaced) and throws a clear error on a mismatch.
    const handle = this.backend.getNamespacedState<ContentsState>(d);
    this.handles.set(d.name, { kind: d.kind, handle });
    return handle;
  }

  /**
   * @internal (test harness) the contents of `window` for the current key, as the window function
   * would get them (reduced or aggregated value, or the list of elements), or `undefined` if none.
   */
  inspectContents(window: W): unknown {
    if (this.sessions !== undefined) return this.sessions.contents(window);
    let ns = window.namespace();
    if (this.merging !== undefined) {
      const stateWindow = this.mergingWindowSet().getStateWindow(window);
      if (stateWindow === undefined) return undefined;
      ns = stateWindow.namespace();
    }
    this.contents.setNamespace(ns);
    const c = this.read();
    if (c === undefined || this.evictor === undefined) return c;
    return (c as readonly TimestampedValue<IN>[]).map((e) => e.value);
  }

  /**
   * @internal (test harness) the windows of the current key that hold contents: the in-flight
   * windows of a merging assigner; else those among `timerNamespaces` (the namespaces of the key's
   * window timers: every window with contents has its cleanup timer) and the global window.
   */
  inspectWindows(timerNamespaces: readonly unknown[]): W[] {
    if (this.sessions !== undefined) return this.sessions.windows() as unknown as W[];
    const candidates = new Map<string | number, W>();
    if (this.merging !== undefined)
      for (const w of this.mergingWindowSet().windows()) candidates.set(w.namespace(), w);
    else {
      for (const ns of timerNamespaces) {
        const w = ns instanceof Window ? (ns as W) : this.assigner.restoreWindow(ns);
        candidates.set(w.namespace(), w);
      }
      // NOTE: the global window has no cleanup timer (its end is the end of time).
      if (this.assigner instanceof GlobalWindows) {
        const g = GlobalWindow.get() as unknown as W;
        candidates.set(g.namespace(), g);
      }
    }
    return [...candidates.values()].filter((w) => this.inspectContents(w) !== undefined);
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
      this.stage = 'window assigner';
      let skipped: boolean;
      if (this.sessions !== undefined) skipped = this.sessions.add(value, timestamp);
      else {
        const windows = this.assigner.assignWindows(value, timestamp, this.assignerContext);
        skipped =
          this.merging === undefined
            ? this.addToWindows(value, timestamp, windows)
            : this.addToMergingWindows(value, timestamp, windows);
      }
      // NOTE: as in Flink, an element is dropped only if none of its windows took it and it is
      // late itself; it then goes to the late side output if one is set, else it is counted.
      if (skipped && this.isElementLate(timestamp)) {
        if (this.lateDataTag !== undefined) {
          this.numLateRecordsToSideOutput.inc();
          this.output.collectSide(this.lateDataTag, value, timestamp);
        } else this.numLateRecordsDropped.inc();
      }
    } catch (e) {
      throw this.userError(e, value, this.stage);
    }
  }

  /**
   * @internal adds the partial result of `window` for `key`, reduced or aggregated from elements
   * by a local pre-aggregation (see pre-aggregate.ts), as if those elements came now: merged into
   * the window's contents with the reduce function or the aggregate's `merge`, and, if the window
   * had no contents, the trigger and the cleanup timer see it as its first element. The window is
   * the one the partial carries, never assigned again (a sliding window's end is in several).
   */
  protected mergePartial(key: Key, window: W, partial: unknown): void {
    try {
      this.stage = 'key selector';
      this.backend.setCurrentKey(key);
      const wm = this.timers.currentWatermark();
      // NOTE: the local operator sends a window's partial before it forwards the watermark that
      // reaches the window's end, and while its channel counts here, so this watermark is below
      // that end. If it were not, the elements would have been judged late or re-fired the window:
      // a partial cannot say which, so this is an error, not a guess.
      if (window.maxTimestamp() <= wm) {
        const info = this.ctx.info;
        throw new TidemarkError(
          'INTERNAL_ERROR',
          `${this.ctx.describe()}: a partial result of ${window} for key ${describeValue(key)} came at watermark ${wm}, after the window's end: its elements' lateness cannot be judged any more (a bug of the local pre-aggregation)`,
          {
            jobName: info.jobName,
            operatorId: info.operatorId,
            operatorName: info.operatorName,
            subtaskIndex: info.subtaskIndex,
          },
        );
      }
      this.contents.setNamespace(window.namespace());
      this.stage = this.spec.kind === 'reduce' ? 'reduce function' : 'aggregate function';
      const wasEmpty = (this.contents as unknown as MergesPartials).mergePartialReportingNew(partial);
      // NOTE: as on the fast path of addToWindows: a window that had contents already has its
      // trigger timer and cleanup timer, so onElement (EventTimeTrigger) would do nothing.
      if (!wasEmpty) return;
      const tctx = this.triggerContext;
      tctx.window = window;
      tctx.registeredTime = Number.NaN;
      this.stage = 'trigger';
      const result = this.trigger.onElement(partial as IN, window.maxTimestamp(), window, tctx);
      if (isFire(result)) {
        const c = this.read();
        if (c !== undefined) this.emitWindowContents(window, c);
      }
      if (isPurge(result)) this.contents.clear();
      this.registerCleanupTimer(window);
    } catch (e) {
      throw this.userError(e, { key, window: String(window) }, this.stage);
    }
  }

  /** Adds an element to its (non-merging) windows; returns true if every window was late. */
  private addToWindows(value: IN, timestamp: number, windows: readonly W[]): boolean {
    let skipped = true;
    const contents = this.contents;
    const tctx = this.triggerContext;
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i]!;
      if (this.isWindowLate(window)) continue;
      skipped = false;
      contents.setNamespace(window.namespace());
      // NOTE: EventTimeTrigger on a window that already had contents and has not reached its end:
      // its timer (maxTimestamp) and the cleanup timer were registered with the first element and
      // neither fired nor was deleted since (only the end of the window or its cleanup removes
      // them), so onElement would return CONTINUE and both registrations would be no-ops. Skip
      // them: the timer service's dedupe lookup is the largest cost per element.
      if (this.addReportingNew !== undefined) {
        // One lookup adds to the contents and tells whether the window had any.
        this.stage = this.spec.kind === 'reduce' ? 'reduce function' : 'aggregate function';
        const wasEmpty = this.addReportingNew.addReportingNew(value);
        if (!wasEmpty && window.maxTimestamp() > this.timers.currentWatermark()) continue;
      } else if (
        this.eventTimeFastPath &&
        window.maxTimestamp() > this.timers.currentWatermark() &&
        this.hasContents()
      ) {
        this.add(value, timestamp);
        continue;
      } else this.add(value, timestamp);
      tctx.window = window;
      tctx.registeredTime = Number.NaN;
      this.stage = 'trigger';
      const result = this.trigger.onElement(value, timestamp, window, tctx);
      if (isFire(result)) {
        const c = this.read();
        if (c === undefined) continue;
        this.emitWindowContents(window, c);
      }
      if (isPurge(result)) contents.clear();
      this.registerCleanupTimer(window);
    }
    return skipped;
  }

  /** Adds an element to its windows, merging them with the key's in-flight windows. */
  private addToMergingWindows(value: IN, timestamp: number, windows: readonly W[]): boolean {
    let skipped = true;
    const contents = this.contents;
    const tctx = this.triggerContext;
    const set = this.mergingWindowSet();
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i]!;
      // Adding the window may merge it; then the merged window is the one we work with.
      this.stage = 'trigger';
      const actual = set.addWindow(window, this.mergeFunction);
      // NOTE: lateness is judged on the window after merging (Flink).
      if (this.isWindowLate(actual)) {
        set.retireWindow(actual);
        continue;
      }
      skipped = false;
      const stateWindow = set.getStateWindow(actual);
      if (stateWindow === undefined)
        throw new TidemarkError('INTERNAL_ERROR', `Window ${window} is not in in-flight window set.`);
      contents.setNamespace(stateWindow.namespace());
      this.add(value, timestamp);
      // NOTE: EventTimeTrigger, and the window's end is ahead of the watermark: onElement would
      // register the end timer and continue. That timer is already there if the window was in
      // flight and unchanged (registered when it came to be, not fired since) or was just merged
      // (onMerge registered it). So is the cleanup timer if the window was in flight, or if it is
      // the same timer (no allowed lateness). Skip those registrations, each a timer lookup.
      if (
        this.eventTimeTrigger &&
        set.added !== 'new' &&
        actual.maxTimestamp() > this.timers.currentWatermark()
      ) {
        if (set.added === 'merged' && this.allowedLateness !== 0) this.registerCleanupTimer(actual);
        continue;
      }
      tctx.window = actual;
      tctx.registeredTime = Number.NaN;
      this.stage = 'trigger';
      const result = this.trigger.onElement(value, timestamp, actual, tctx);
      if (isFire(result)) {
        const c = this.read();
        if (c === undefined) continue;
        this.emitWindowContents(actual, c);
      }
      if (isPurge(result)) contents.clear();
      this.registerCleanupTimer(actual);
    }
    set.persist();
    return skipped;
  }

  /** Flink's merge function: trigger onMerge, clear the merged windows, merge their state. */
  private onWindowsMerged(
    mergeResult: W,
    mergedWindows: readonly W[],
    stateWindowResult: W,
    mergedStateWindows: readonly W[],
  ): void {
    if (this.isEventTime) {
      const wm = this.timers.currentWatermark();
      if (this.cleanupTime(mergeResult) <= wm)
        throw new InvalidArgumentError(
          `The end timestamp of an event-time window cannot become earlier than the current watermark by merging. Current watermark: ${wm} window: ${mergeResult}`,
        );
    } else {
      const now = this.timers.currentProcessingTime();
      if (mergeResult.maxTimestamp() <= now)
        throw new InvalidArgumentError(
          `The end timestamp of a processing-time window cannot become earlier than the current processing time by merging. Current processing time: ${now} window: ${mergeResult}`,
        );
    }
    const tctx = this.triggerContext;
    tctx.window = mergeResult;
    tctx.mergedWindows = mergedWindows;
    this.stage = 'trigger';
    try {
      this.trigger.onMerge(mergeResult, tctx);
    } finally {
      tctx.mergedWindows = [];
    }
    // NOTE: without allowed lateness, EventTimeTrigger's clear deletes the cleanup timer itself
    // (the same timer: maxTimestamp); deleting it again would be a lookup that finds nothing.
    const cleanupCleared = this.eventTimeTrigger && this.allowedLateness === 0;
    for (const m of mergedWindows) {
      tctx.window = m;
      this.trigger.clear(m, tctx);
      if (!cleanupCleared) this.deleteCleanupTimer(m);
    }
    if (mergedStateWindows.length > 0) {
      const sources: Namespace[] = [];
      for (const s of mergedStateWindows) sources.push(s.namespace());
      this.stage = this.spec.kind === 'aggregate' ? 'aggregate function' : 'reduce function';
      this.backend.mergeNamespaces(this.contentsDescriptor, stateWindowResult.namespace(), sources);
    }
  }

  /** Adds to the contents state at its current namespace. */
  private add(value: IN, timestamp: number): void {
    if (this.evictor !== undefined) {
      this.contents.add({ value, timestamp } satisfies TimestampedValue<IN>);
      return;
    }
    this.stage = this.spec.kind === 'reduce' ? 'reduce function' : 'aggregate function';
    this.contents.add(value);
  }

  /** True if the window at the current namespace has contents (without computing a result). */
  private hasContents(): boolean {
    return this.read() !== undefined;
  }

  /** The contents at the current namespace, or `undefined` if there are none (Flink's null). */
  private read(): unknown {
    return this.present(this.contents.get());
  }

  /** Contents as read (or taken), `undefined` for none: an empty list is none. */
  private present(c: unknown): unknown {
    if (this.listContents && (c as readonly unknown[]).length === 0) return undefined;
    return c;
  }

  onEventTime(timer: Timer<Key, W>): void {
    this.onTimer(timer, true);
  }

  onProcessingTime(timer: Timer<Key, W>): void {
    this.onTimer(timer, false);
  }

  private onTimer(timer: Timer<Key, W>, eventTime: boolean): void {
    try {
      const window =
        timer.namespace instanceof Window ? timer.namespace : this.assigner.restoreWindow(timer.namespace);
      const tctx = this.triggerContext;
      tctx.window = window;
      let set: MergingWindowSet<W> | undefined;
      if (this.merging !== undefined) {
        set = this.mergingWindowSet();
        const stateWindow = set.getStateWindow(window);
        // A timer of a window that merged away or was cleaned up: nothing to do.
        if (stateWindow === undefined) return;
        this.contents.setNamespace(stateWindow.namespace());
      } else {
        this.contents.setNamespace(window.namespace());
      }
      this.stage = 'trigger';
      const result: TriggerResult = eventTime
        ? this.trigger.onEventTime(timer.timestamp, window, tctx)
        : this.trigger.onProcessingTime(timer.timestamp, window, tctx);
      const cleanup = eventTime === this.isEventTime && this.cleanupTime(window) === timer.timestamp;
      // NOTE: a window that fires and is cleaned up now (EventTimeTrigger without allowed
      // lateness) takes its contents out with the read: one lookup of the key's entries, not a
      // read and a clear. Its window function sees the same elements (nothing it can reach reads
      // the contents state), and a failure in it fails the task, which restores from a checkpoint.
      const taken = cleanup && isFire(result) && set === undefined && this.getAndClear !== undefined;
      if (taken) {
        const c = this.present(this.getAndClear!.getAndClear());
        if (c !== undefined) this.emitWindowContents(window, c);
      } else if (isFire(result)) {
        const c = this.read();
        if (c !== undefined) this.emitWindowContents(window, c);
      }
      if (isPurge(result) && !taken) this.contents.clear();
      if (cleanup)
        this.clearAllState(
          window,
          set,
          eventTime && this.eventTimeTrigger && timer.timestamp === window.maxTimestamp(),
          taken,
        );
      set?.persist();
    } catch (e) {
      throw this.userError(
        e,
        { key: timer.key, window: String(timer.namespace), timer: timer.timestamp },
        this.stage,
      );
    }
  }

  /**
   * Removes everything of a window: contents, trigger state and timers, window-function state.
   * `firingTriggerTimer`: the EventTimeTrigger's one timer (maxTimestamp) is the one firing now,
   * already off the queue; its clear() would only delete it, so it is skipped. `contentsCleared`:
   * the contents were taken out as the window fired.
   */
  private clearAllState(
    window: W,
    set: MergingWindowSet<W> | undefined,
    firingTriggerTimer = false,
    contentsCleared = false,
  ): void {
    if (!contentsCleared) this.contents.clear();
    const tctx = this.triggerContext;
    tctx.window = window;
    this.stage = 'trigger';
    if (!firingTriggerTimer) this.trigger.clear(window, tctx);
    if (this.fn?.clear !== undefined) {
      this.stage = 'window function clear()';
      this.processContext.window = window;
      this.fn.clear(this.processContext as unknown as ProcessWindowContext<W>);
    }
    if (set !== undefined) {
      set.retireWindow(window);
      set.persist();
    }
  }

  /** Evaluates a window on its contents and emits the results with the window's maxTimestamp. */
  private emitWindowContents(window: W, contents: unknown): void {
    const ts = window.maxTimestamp();
    if (this.evictor !== undefined) {
      this.emitEvicting(window, contents as readonly TimestampedValue<IN>[]);
      return;
    }
    this.stage = 'window function';
    if (this.fn === undefined) {
      this.output.collect(contents as OUT, ts);
      return;
    }
    this.emitTimestamp = ts;
    this.processContext.window = window;
    const input = this.listContents ? (contents as readonly unknown[]) : [contents];
    this.fn.process(
      this.backend.getCurrentKey() as K,
      this.processContext as unknown as ProcessWindowContext<W>,
      input,
      this as Collector<unknown>,
    );
  }

  /** Flink's EvictingWindowOperator: evict before, evaluate the rest, evict after, store the rest. */
  private emitEvicting(window: W, stored: readonly TimestampedValue<IN>[]): void {
    const evictor = this.evictor!;
    const elements = stored.slice();
    this.stage = 'evictor';
    evictor.evictBefore(elements, elements.length, window, this.evictorContext);
    const ts = window.maxTimestamp();
    this.emitTimestamp = ts;
    this.stage = this.spec.kind === 'list' ? 'window function' : `${this.spec.kind} function`;
    let result: unknown;
    let hasResult = true;
    switch (this.spec.kind) {
      case 'reduce': {
        const reduce = this.spec.reduce;
        let acc: IN | undefined;
        for (let i = 0; i < elements.length; i++) {
          const v = elements[i]!.value;
          acc = i === 0 ? v : reduce(acc as IN, v);
        }
        // NOTE: with every element evicted there is nothing to reduce, so nothing is emitted.
        hasResult = elements.length > 0;
        result = acc;
        break;
      }
      case 'aggregate': {
        const agg = this.spec.aggregate;
        let acc = agg.createAccumulator();
        for (const e of elements) acc = agg.add(e.value, acc);
        result = agg.getResult(acc);
        break;
      }
      case 'list': {
        const values: IN[] = [];
        for (const e of elements) values.push(e.value);
        result = values;
        break;
      }
    }
    if (hasResult) {
      this.stage = 'window function';
      if (this.fn === undefined) this.output.collect(result as OUT, ts);
      else {
        this.processContext.window = window;
        this.fn.process(
          this.backend.getCurrentKey() as K,
          this.processContext as unknown as ProcessWindowContext<W>,
          this.spec.kind === 'list' ? (result as IN[]) : [result],
          this as Collector<unknown>,
        );
      }
    }
    this.stage = 'evictor';
    evictor.evictAfter(elements, elements.length, window, this.evictorContext);
    // Store what is left (Flink rewrites the list; skip it when nothing was evicted).
    let same = elements.length === stored.length;
    for (let i = 0; same && i < elements.length; i++) same = elements[i] === stored[i];
    if (!same) (this.contents as unknown as ListState<TimestampedValue<IN>>).update(elements);
  }

  /** The merging window set, loaded with the current key's windows. */
  private mergingWindowSet(): MergingWindowSet<W> {
    return this.mergingSet!.load();
  }

  /** `maxTimestamp + allowedLateness` in event time (+Infinity beyond safe integers), else `maxTimestamp`. */
  private cleanupTime(window: W): number {
    const max = window.maxTimestamp();
    if (!this.isEventTime) return max;
    const t = max + this.allowedLateness;
    return t > Number.MAX_SAFE_INTEGER ? Number.POSITIVE_INFINITY : t;
  }

  private isWindowLate(window: W): boolean {
    return this.isEventTime && this.cleanupTime(window) <= this.timers.currentWatermark();
  }

  private isElementLate(timestamp: number): boolean {
    return this.isEventTime && timestamp + this.allowedLateness <= this.timers.currentWatermark();
  }

  private registerCleanupTimer(window: W): void {
    const t = this.cleanupTime(window);
    // NOTE: no cleanup timer for "the end of time" (the global window), as in Flink.
    if (t === Number.POSITIVE_INFINITY) return;
    if (this.isEventTime) {
      // NOTE: the trigger (EventTimeTrigger, allowed lateness 0) has just registered this very
      // timer; registering it again is a no-op, so skip the timer service's lookup.
      const tctx = this.triggerContext;
      if (tctx.registeredTime === t && tctx.registeredWindow === window) return;
      this.timers.registerEventTimeTimer(window, t);
    } else this.timers.registerProcessingTimeTimer(window, t);
  }

  private deleteCleanupTimer(window: W): void {
    const t = this.cleanupTime(window);
    if (t === Number.POSITIVE_INFINITY) return;
    if (this.isEventTime) this.timers.deleteEventTimeTimer(window, t);
    else this.timers.deleteProcessingTimeTimer(window, t);
  }
}

function contentsDescriptor<IN>(spec: WindowContentsSpec<IN>, evicting: boolean): StateDescriptor {
  if (evicting || spec.kind === 'list') return new ListStateDescriptor(CONTENTS);
  if (spec.kind === 'reduce') return new ReducingStateDescriptor(CONTENTS, spec.reduce);
  return new AggregatingStateDescriptor(CONTENTS, spec.aggregate);
}
