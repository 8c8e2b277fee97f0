/**
 * The session fast path of the window operator: event-time session windows (a fixed or a dynamic
 * gap) with the default trigger (EventTimeTrigger), no evictor and incremental contents (reduce or
 * aggregate, optionally with a window function on the result). Results, timestamps, lateness,
 * allowed lateness and re-firing, the late side output and counts, and the timers a test sees are
 * those of the general merging path (Flink's WindowOperator with its MergingWindowSet); what
 * differs is how sessions are kept.
 *
 * A key's sessions are one array of plain records `{ id, start, end, acc, fire }` in keyed state
 * (`session-windows`), sorted by start (sessions of a key never overlap nor touch: they would have
 * merged). An element that extends a session changes its `end` and `acc` in place: no window
 * object, no merging window set written back, no second state lookup for the contents. Each
 * session has the timers the general path gives it, in namespace `id` (the start it had when it
 * came to be: unique among the key's sessions, which never overlap) of the service
 * `session-timers`: the trigger's timer at `end - 1` while it has not fired (`fire`), and, with
 * allowed lateness, the cleanup timer at `end - 1 + allowedLateness`. Extending a session moves
 * its timers (`moveEventTimeTimer`) instead of deleting and registering them.
 */
import type { ValueState } from '../../state/descriptors.js';
import { ValueStateDescriptor } from '../../state/descriptors.js';
import { TidemarkError } from '../../state/errors.js';
import type { AggregateFunction, ReduceFunction } from '../../state/functions.js';
import type { Key } from '../../state/hash.js';
import type { KeyedStateBackend } from '../../state/keyed-backend.js';
import type { InternalTimerService, Timer, Triggerable } from '../contract.js';
import {
  DynamicEventTimeSessionWindows,
  EventTimeSessionWindows,
  type WindowAssigner,
  type WindowAssignerContext,
} from './assigners.js';
import { EventTimeTrigger, type Trigger } from './triggers.js';
import type { WindowContentsSpec } from './window-operator.js';
import { TimeWindow, type Window } from './windows.js';

/**
 * @internal switches for tests and benchmarks: with `fastPath` false, every window operator built
 * afterwards keeps its sessions on the general merging path (also `TIDEMARK_SESSION_FAST_PATH=0`).
 */
export const sessionWindowSettings = {
  fastPath:
    (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
      ?.TIDEMARK_SESSION_FAST_PATH !== '0',
};

/** Name of the keyed state that holds a key's sessions. */
export const SESSIONS_STATE = 'session-windows';
/** Name of the timer service of the sessions' timers. */
export const SESSION_TIMERS = 'session-timers';

/** One session of a key (stored as is in keyed state, so plain data). */
export interface Session {
  /** The start the session had when it came to be: the namespace of its timers. */
  id: number;
  start: number;
  end: number;
  /** The accumulator (aggregate) or the reduced value (reduce). */
  acc: unknown;
  /** Its trigger timer (at `end - 1`) is registered: it fires when the watermark gets there. */
  fire: boolean;
}

/** What the fast path needs to know of the operator's configuration. */
interface SessionParams {
  readonly gap: number;
  readonly extractor: ((element: unknown) => number) | undefined;
}

/**
 * The fast path's parameters if the window operator described can take it: an event-time session
 * assigner of tidemark's own (fixed or dynamic gap), EventTimeTrigger, no evictor, reduce or
 * aggregate contents. Otherwise `undefined` (the general merging path).
 */
export function sessionFastPathFor(
  assigner: WindowAssigner<unknown, Window>,
  trigger: Trigger<unknown, Window>,
  hasEvictor: boolean,
  contents: WindowContentsSpec<unknown>,
): SessionParams | undefined {
  if (hasEvictor || contents.kind === 'list' || !(trigger instanceof EventTimeTrigger)) return undefined;
  const proto = Object.getPrototypeOf(assigner);
  if (proto === EventTimeSessionWindows.prototype)
    return { gap: (assigner as EventTimeSessionWindows).gapMs, extractor: undefined };
  if (proto === DynamicEventTimeSessionWindows.prototype)
    return {
      gap: 0,
      extractor: (assigner as DynamicEventTimeSessionWindows<unknown>).extractor as (e: unknown) => number,
    };
  return undefined;
}

/** What the fast path asks of its window operator. */
export interface SessionHost {
  /** What user code runs now (for error messages). */
  stage: string;
  /** Evaluates a fired session on its contents and emits the results with timestamp `end - 1`. */
  emitSession(window: TimeWindow, contents: unknown): void;
  /** Calls the window function's `clear()` for a session that is cleaned up. */
  clearSession(window: TimeWindow): void;
  /** Wraps an error of a timer's firing (as the general path does). */
  timerError(e: unknown, timer: Timer<Key, unknown>): Error;
}

/** @internal the sessions of a window operator on the fast path (see the module's comment). */
export class SessionWindows implements Triggerable<Key, number> {
  private readonly state: ValueState<Session[]>;
  readonly timers: InternalTimerService<number>;
  private readonly gap: number;
  private readonly extractor: ((element: unknown) => number) | undefined;
  private readonly reduce: ReduceFunction<unknown> | undefined;
  private readonly aggregate: AggregateFunction<unknown, unknown, unknown> | undefined;
  private readonly lateness: number;

  constructor(
    private readonly host: SessionHost,
    private readonly backend: KeyedStateBackend,
    timerService: (target: Triggerable<Key, number>) => InternalTimerService<number>,
    params: SessionParams,
    private readonly assigner: WindowAssigner<unknown, Window>,
    private readonly assignerContext: WindowAssignerContext,
    contents: WindowContentsSpec<unknown>,
    allowedLateness: number,
  ) {
    this.state = backend.getState(new ValueStateDescriptor<Session[]>(SESSIONS_STATE));
    this.timers = timerService(this);
    this.gap = params.gap;
    this.extractor = params.extractor;
    this.reduce = contents.kind === 'reduce' ? contents.reduce : undefined;
    this.aggregate = contents.kind === 'aggregate' ? contents.aggregate : undefined;
    this.lateness = allowedLateness;
  }

  /** `t + allowedLateness`, +Infinity beyond safe integers (no cleanup then, as in the general path). */
  private cleanupAt(maxTimestamp: number): number {
    const t = maxTimestamp + this.lateness;
    return t > Number.MAX_SAFE_INTEGER ? Number.POSITIVE_INFINITY : t;
  }

  /**
   * Adds an element of the current key; returns true if it was skipped (its window is late and
   * merges with no session), as the general path's `addToMergingWindows` does.
   */
  add(value: unknown, timestamp: number): boolean {
    const host = this.host;
    // The element's window [timestamp, timestamp + gap), without a window object.
    let gap = this.gap;
    if (!Number.isFinite(timestamp) || this.extractor !== undefined) {
      host.stage = 'window assigner';
      if (!Number.isFinite(timestamp)) {
        this.assigner.assignWindows(value, timestamp, this.assignerContext); // throws the assigner's error
        throw new TidemarkError('INTERNAL_ERROR', `no session window for timestamp ${timestamp}`);
      }
      gap = this.extractor!(value);
      if (!Number.isSafeInteger(gap) || gap <= 0) {
        this.assigner.assignWindows(value, timestamp, this.assignerContext); // throws the assigner's error
        throw new TidemarkError('INTERNAL_ERROR', `dynamic session gap ${gap} was not rejected`);
      }
    }
    const start = timestamp;
    const end = timestamp + gap;
    const watermark = this.timers.currentWatermark();
    let list = this.state.value();
    // The sessions the window touches or overlaps are list[i..j] (sorted by start, disjoint):
    // j is the last that starts at or before the window's end.
    let j = list === undefined ? -1 : list.length - 1;
    while (j >= 0 && list![j]!.start > end) j--;
    let i = j;
    while (i >= 0 && list![i]!.end >= start) i--;
    i++;
    let s: Session;
    if (i > j) {
      // On its own: a new session, unless its window is late (then the element is skipped).
      if (this.cleanupAt(end - 1) <= watermark) return true;
      s = { id: start, start, end, acc: undefined, fire: false };
      if (list === undefined) this.state.update((list = [s]));
      else list.splice(j + 1, 0, s);
      this.addValue(s, value, true);
      this.fireOrRegister(s, watermark);
      this.backend.touch();
      return false;
    }
    s = list![i]!;
    const oldEnd = s.end;
    const newEnd = Math.max(list![j]!.end, end);
    if (j > i) this.mergeInto(list!, i, j);
    // NOTE: a session whose bounds change is a new window to the general path, which registers
    // its timers anew (after those registered before, at the same times): so are they here.
    if (start < s.start || newEnd !== oldEnd) {
      if (start < s.start) s.start = start;
      s.end = newEnd;
      this.extended(s, oldEnd, watermark);
    }
    this.addValue(s, value, false);
    // EventTimeTrigger.onElement: a session the watermark has passed fires at once.
    if (newEnd - 1 <= watermark) this.emit(s);
    this.backend.touch();
    return false;
  }

  /** Adds the element to a session's contents (`first`: it has none yet). */
  private addValue(s: Session, value: unknown, first: boolean): void {
    const agg = this.aggregate;
    if (agg !== undefined) {
      this.host.stage = 'aggregate function';
      s.acc = agg.add(value, first ? agg.createAccumulator() : s.acc);
    } else {
      this.host.stage = 'reduce function';
      s.acc = first ? value : this.reduce!(s.acc, value);
    }
  }

  /** A new session: fired at once if the watermark passed its end, else its timer; its cleanup timer. */
  private fireOrRegister(s: Session, watermark: number): void {
    const max = s.end - 1;
    if (max <= watermark) this.emit(s);
    else {
      this.timers.registerEventTimeTimer(s.id, max);
      s.fire = true;
    }
    if (this.lateness !== 0) {
      const c = this.cleanupAt(max);
      if (c !== Number.POSITIVE_INFINITY) this.timers.registerEventTimeTimer(s.id, c);
    }
  }

  /**
   * A session's bounds changed (its end from `oldEnd`): its timers follow (the general path's
   * onMerge registers the merged window's timers, and clear deletes the old window's).
   */
  private extended(s: Session, oldEnd: number, watermark: number): void {
    const max = s.end - 1;
    const timers = this.timers;
    // NOTE: the cleanup timer first: the trigger's new time may be the cleanup timer's old one (both
    // are in the session's namespace). Each is the only timer of its timestamp it moves with, so
    // the order between the two is not seen.
    if (this.lateness !== 0) {
      const from = this.cleanupAt(oldEnd - 1);
      const to = this.cleanupAt(max);
      if (from !== Number.POSITIVE_INFINITY) {
        if (to === Number.POSITIVE_INFINITY) timers.deleteEventTimeTimer(s.id, from);
        else timers.moveEventTimeTimer(s.id, from, to);
      }
    }
    if (s.fire) timers.moveEventTimeTimer(s.id, oldEnd - 1, max);
    else if (max > watermark) {
      timers.registerEventTimeTimer(s.id, max);
      s.fire = true;
    }
  }

  /**
   * Merges sessions `i+1..j` into session `i` (whose bounds the caller sets): their contents as the
   * general path merges state windows (the earliest session's, then the others' merged in order),
   * and their timers deleted.
   */
  private mergeInto(list: Session[], i: number, j: number): void {
    const s = list[i]!;
    const agg = this.aggregate;
    this.host.stage = agg !== undefined ? 'aggregate function' : 'reduce function';
    let merged: unknown;
    for (let k = i + 1; k <= j; k++) {
      const m = list[k]!;
      merged =
        k === i + 1 ? m.acc : agg !== undefined ? agg.merge!(merged, m.acc) : this.reduce!(merged, m.acc);
      this.deleteTimers(m);
    }
    s.acc = agg !== undefined ? agg.merge!(s.acc, merged) : this.reduce!(s.acc, merged);
    list.splice(i + 1, j - i);
  }

  /** Deletes the timers of a session that merged away. */
  private deleteTimers(m: Session): void {
    const max = m.end - 1;
    if (m.fire) this.timers.deleteEventTimeTimer(m.id, max);
    if (this.lateness !== 0) {
      const c = this.cleanupAt(max);
      if (c !== Number.POSITIVE_INFINITY) this.timers.deleteEventTimeTimer(m.id, c);
    }
  }

  /** Emits a session's contents (the reduced value, or the aggregate's result). */
  private emit(s: Session): void {
    const agg = this.aggregate;
    let contents = s.acc;
    if (agg !== undefined) {
      this.host.stage = 'aggregate function';
      contents = agg.getResult(s.acc);
    }
    this.host.emitSession(new TimeWindow(s.start, s.end), contents);
  }

  onEventTime(timer: Timer<Key, number>): void {
    try {
      const list = this.state.value();
      if (list === undefined) return;
      const id = timer.namespace;
      let i = 0;
      while (i < list.length && list[i]!.id !== id) i++;
      // NOTE: not reached: a session's timers go when it merges away or is cleaned up.
      if (i === list.length) return;
      const s = list[i]!;
      const t = timer.timestamp;
      const max = s.end - 1;
      // EventTimeTrigger.onEventTime: fires at the window's maxTimestamp.
      if (t === max) {
        s.fire = false;
        this.emit(s);
      }
      if (t === this.cleanupAt(max)) {
        list.splice(i, 1);
        if (list.length === 0) this.state.update(undefined);
        this.host.clearSession(new TimeWindow(s.start, s.end));
      }
      this.backend.touch();
    } catch (e) {
      throw this.host.timerError(e, timer);
    }
  }

  onProcessingTime(): void {}

  /** The sessions of the current key, as windows (for the test harness). */
  windows(): TimeWindow[] {
    return (this.state.value() ?? []).map((s) => new TimeWindow(s.start, s.end));
  }

  /** The contents of the current key's session `window`, or `undefined` (for the test harness). */
  contents(window: Window): unknown {
    if (!(window instanceof TimeWindow)) return undefined;
    const s = (this.state.value() ?? []).find((x) => x.start === window.start && x.end === window.end);
    if (s === undefined) return undefined;
    return this.aggregate !== undefined ? this.aggregate.getResult(s.acc) : s.acc;
  }

  /** True if keyed state holds sessions of this path (after a restore). */
  static hasState(backend: KeyedStateBackend): boolean {
    return hasKeys(backend, SESSIONS_STATE);
  }
}

/**
 * True if state `name` holds an entry of some key, asked when an operator opens (before it
 * registers its own states): then a state is there only if a restore brought entries of it (a
 * snapshot leaves empty states out). By name, because listing keys would install every restored
 * key group at once instead of when needed (see OperatorRuntime.deferRestore).
 */
export function hasKeys(backend: KeyedStateBackend, name: string): boolean {
  return backend.stateNames().includes(name);
}
