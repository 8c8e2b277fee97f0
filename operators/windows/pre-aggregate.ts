/**
 * Local pre-aggregation of window aggregations (Flink SQL's local-global, or two-phase, window
 * aggregation: `LocalSlicingWindowAggOperator` before the shuffle, `GlobalSlicingWindowAggOperator`
 * after it), asked for with `.window(...).preAggregate()` or `.windowAll(...).preAggregate()`.
 *
 * The local operator runs at the parallelism of its input, chained to it, before the keyBy. It
 * keeps one partial result (a reduced value or an accumulator) per key and window and sends it on
 * when its input watermark reaches the window's end, before it forwards that watermark; so each
 * subtask sends one partial per key and window instead of every element. The global operator is
 * the window operator of the unsplit job: it merges partials into the window's contents (with the
 * reduce function or the aggregate's `merge`) and handles the elements it gets as it always does.
 *
 * Why the results, lateness and metrics are those of the unsplit operator: the global operator's
 * watermark is the minimum over its input channels, so while the channel of a local subtask counts
 * in it, it is at most that subtask's watermark. An element whose windows all end after the local
 * watermark is therefore on time for all of them at the global operator too, and its partial gets
 * there before the watermark that fires them: it is in the same firings as the element would have
 * been. Any other element (one of its windows has ended by the local watermark) may be late, or
 * late but within the allowed lateness: the local operator does not judge it, it passes it on as
 * it is, and the global operator drops and counts it, sends it to the late side output, or adds it
 * and re-fires the window, as the unsplit operator does.
 */

import { type ListState, ListStateDescriptor } from '../../state/descriptors.js';
import { InvalidGraphError } from '../../state/errors.js';
import type { AggregateFunction, ReduceFunction } from '../../state/functions.js';
import type { Key } from '../../state/hash.js';
import { canonicalKey, type MapKey } from '../../state/key-codec.js';
import type { Counter } from '../contract.js';
import type { KeySelector } from '../functions.js';
import { OneInputStreamOperator } from '../operator.js';
import {
  GlobalWindows,
  MergingWindowAssigner,
  SlidingEventTimeWindows,
  TumblingEventTimeWindows,
  type WindowAssigner,
  type WindowAssignerContext,
} from './assigners.js';
import type { Evictor } from './evictors.js';
import { EventTimeTrigger, type Trigger } from './triggers.js';
import { type WindowContentsSpec, WindowOperator } from './window-operator.js';
import { TimeWindow, type Window } from './windows.js';

/** @internal an element that the local operator passes on as it is, for the global operator to judge. */
export interface UnaggregatedElement<T> {
  readonly kind: 'element';
  readonly value: T;
}

/** @internal the partial result of one key and window: a reduced value or an accumulator. */
export interface PartialResult {
  readonly kind: 'partial';
  readonly key: Key;
  /** The window, explicitly: the global operator does not assign windows to partials. */
  readonly start: number;
  readonly end: number;
  readonly partial: unknown;
}

/**
 * @internal what goes from the local to the global operator.
 *
 * NOTE: plain objects with a `kind`, so that they cross threads and hosts as any record does, and
 * every record is wrapped (not only partials): a user's record can look like anything, a wrapper
 * cannot be mistaken for one.
 */
export type PreAggregated<T> = UnaggregatedElement<T> | PartialResult;

/** @internal the key of what the local operator sends: a partial's own key, or the element's. */
export function preAggregatedKey<T, K extends Key>(
  keySelector: KeySelector<T, K>,
): KeySelector<PreAggregated<T>, Key> {
  return (r) => (r.kind === 'partial' ? r.key : keySelector(r.value));
}

/** Why `preAggregate()` cannot split this window, or `undefined` if it can. */
export function preAggregationProblem(
  assigner: WindowAssigner<unknown, Window>,
  trigger: Trigger<unknown, Window>,
  evictor: Evictor<unknown, Window> | undefined,
  contents: WindowContentsSpec<unknown>,
): string | undefined {
  if (assigner instanceof MergingWindowAssigner)
    return `its windows merge (${assigner}): a session's extent depends on the elements of every subtask, so no subtask can tell on its own which window an element ends up in`;
  if (assigner instanceof GlobalWindows)
    return `its windows are global windows (count windows): they fire by their trigger, not by the watermark`;
  if (!assigner.isEventTime())
    return `its windows are in processing time (${assigner}): the local and the global operator would not agree on the time, so on which window an element belongs to and when it fires`;
  if (!(assigner instanceof TumblingEventTimeWindows) && !(assigner instanceof SlidingEventTimeWindows))
    return `its assigner (${assigner}) is neither TumblingEventTimeWindows nor SlidingEventTimeWindows`;
  if (!(trigger instanceof EventTimeTrigger))
    return `it has a custom or count trigger (${trigger}): a trigger that sees every element cannot see partial results; only the default EventTimeTrigger, which fires on the watermark, can`;
  if (evictor !== undefined) return `it has an evictor (${evictor}), which needs every element of a window`;
  if (contents.kind === 'list')
    return 'process() and apply() see every element of a window; only reduce() and aggregate() combine partial results';
  if (contents.kind === 'aggregate' && typeof contents.aggregate.merge !== 'function')
    return 'its AggregateFunction has no merge(a, b), which the global operator needs to combine the partial results';
  return undefined;
}

/** Throws the graph error for a window that cannot be pre-aggregated (see {@link preAggregationProblem}). */
export function checkPreAggregation(
  jobName: string,
  operatorName: string,
  problem: string | undefined,
): void {
  if (problem === undefined) return;
  throw new InvalidGraphError(
    `job '${jobName}': preAggregate() cannot split window operator '${operatorName}': ${problem}. Local pre-aggregation needs event-time tumbling or sliding windows, the default trigger, no evictor, and reduce() or aggregate() with merge()`,
    { jobName, operatorName },
  );
}

/** The partial result of one key and window held by a local subtask. */
interface Pane {
  readonly key: Key;
  readonly window: TimeWindow;
  partial: unknown;
}

/** How a partial result is kept in operator state: `[key, start, end, partial]`. */
type StoredPane = [Key, number, number, unknown];

/** Name of the local operator's list state of partial results. */
const PANES = 'pre-aggregated-panes';

/** Everything a local pre-aggregation is built from (fresh copies per subtask). */
export interface LocalWindowAggregateSpec<IN, K extends Key> {
  readonly assigner: WindowAssigner<IN, TimeWindow>;
  readonly keySelector: KeySelector<IN, K>;
  readonly contents: WindowContentsSpec<IN>;
}

/**
 * @internal the local half of a pre-aggregated window: one partial result per key and window,
 * sent on when the input watermark reaches the window's end (see the module comment).
 */
export class LocalWindowAggregateOperator<IN, K extends Key> extends OneInputStreamOperator<
  IN,
  PreAggregated<IN>
> {
  private readonly assigner: WindowAssigner<IN, TimeWindow>;
  private readonly keySelector: KeySelector<IN, K>;
  private readonly reduce: ReduceFunction<IN> | undefined;
  private readonly aggregate: AggregateFunction<IN, unknown, unknown> | undefined;
  /** Partial results by the window's maxTimestamp, then by key. */
  private readonly panes = new Map<number, Map<MapKey, Pane>>();
  /** The maxTimestamps of `panes`, ascending. */
  private ends: number[] = [];
  /** The last window added to, and its panes (most elements fall in the window before them). */
  private lastWindow: TimeWindow | undefined = undefined;
  private lastPanes: Map<MapKey, Pane> | undefined = undefined;
  /** The input watermark. */
  private watermark = Number.NEGATIVE_INFINITY;
  /** True once the input has been idle: from then on every element is passed on (see processIdle). */
  private passThrough = false;
  private state!: ListState<StoredPane>;
  private notPreAggregated!: Counter;
  private stage = 'key selector';
  private readonly assignerContext: WindowAssignerContext = {
    getCurrentProcessingTime: () => this.ctx.clock.now(),
  };

  constructor(spec: LocalWindowAggregateSpec<IN, K>) {
    super();
    this.assigner = spec.assigner;
    this.keySelector = spec.keySelector;
    const c = spec.contents;
    if (c.kind === 'list')
      throw new InvalidGraphError('a local window aggregation needs reduce or aggregate contents');
    this.reduce = c.kind === 'reduce' ? c.reduce : undefined;
    this.aggregate = c.kind === 'aggregate' ? c.aggregate : undefined;
  }

  override initializeState(): void {
    // NOTE: operator list state, not keyed state: this operator is chained to a non-keyed input,
    // so a subtask sees keys of every key group and could not keep them in keyed state (which holds
    // only the subtask's own key groups). Partial results merge, so any split of the list over the
    // subtasks of a restore (even a rescaled one) gives the same results: each restored partial is
    // sent when the new subtask's watermark reaches its window's end, and the global operator's
    // watermark, which restarts with the job, is below that end until then.
    this.state = this.ctx.operatorState.getListState(new ListStateDescriptor<StoredPane>(PANES));
    for (const [key, start, end, partial] of this.state.get()) {
      this.stage = this.reduce === undefined ? 'aggregate function' : 'reduce function';
      try {
        this.mergeInto(key, new TimeWindow(start, end), partial);
      } catch (e) {
        throw this.userError(e, undefined, `${this.stage} (merging restored partial results)`);
      }
    }
  }

  override open(): void {
    this.notPreAggregated = this.ctx.metrics.counter('numRecordsNotPreAggregated');
  }

  processElement(value: IN, timestamp: number): void {
    try {
      if (this.passThrough) {
        this.passOn(value, timestamp);
        return;
      }
      this.stage = 'key selector';
      const key = this.keySelector(value);
      this.stage = 'window assigner';
      const windows = this.assigner.assignWindows(value, timestamp, this.assignerContext);
      // NOTE: an element in no window (sliding windows with slide > size leave gaps) is dropped
      // by the window operator, and counted or side-output if it is late itself: its to judge.
      if (windows.length === 0) {
        this.passOn(value, timestamp);
        return;
      }
      const wm = this.watermark;
      for (let i = 0; i < windows.length; i++)
        if (windows[i]!.maxTimestamp() <= wm) {
          this.passOnBehind(key, windows, value, timestamp);
          return;
        }
      this.stage = this.reduce === undefined ? 'aggregate function' : 'reduce function';
      const mk = canonicalKey(key);
      for (let i = 0; i < windows.length; i++) {
        const window = windows[i]!;
        const byKey = window === this.lastWindow ? this.lastPanes! : this.panesOf(window);
        const pane = byKey.get(mk);
        if (pane === undefined) byKey.set(mk, { key, window, partial: this.first(value) });
        else pane.partial = this.add(value, pane.partial);
      }
    } catch (e) {
      throw this.userError(e, value, this.stage);
    }
  }

  /**
   * An element one of whose windows has ended by this subtask's watermark: the global operator
   * judges it (late, late but allowed, or on time for its other windows).
   *
   * NOTE: the partials this subtask holds for the element's other windows of the same key go
   * first, so that the global operator still sees the elements of one subtask in their order (a
   * reduce need not be commutative for one input subtask to give the unsplit result).
   */
  private passOnBehind(key: K, windows: readonly TimeWindow[], value: IN, timestamp: number): void {
    const mk = canonicalKey(key);
    for (const window of windows) {
      const byKey = this.panes.get(window.maxTimestamp());
      const pane = byKey?.get(mk);
      if (pane === undefined) continue;
      byKey!.delete(mk);
      this.emitPartial(pane);
    }
    this.passOn(value, timestamp);
  }

  private passOn(value: IN, timestamp: number): void {
    this.notPreAggregated.inc();
    this.output.collect({ kind: 'element', value }, timestamp);
  }

  private first(value: IN): unknown {
    return this.reduce !== undefined
      ? value
      : this.aggregate!.add(value, this.aggregate!.createAccumulator());
  }

  private add(value: IN, partial: unknown): unknown {
    return this.reduce !== undefined
      ? this.reduce(partial as IN, value)
      : this.aggregate!.add(value, partial);
  }

  /** Merges a partial result into the pane of its key and window (restored state). */
  private mergeInto(key: Key, window: TimeWindow, partial: unknown): void {
    const byKey = this.panesOf(window);
    const mk = canonicalKey(key);
    const pane = byKey.get(mk);
    if (pane === undefined) byKey.set(mk, { key, window, partial });
    else
      pane.partial =
        this.reduce !== undefined
          ? this.reduce(pane.partial as IN, partial as IN)
          : this.aggregate!.merge!(pane.partial, partial);
  }

  /** The panes of a window (created if needed); remembers it as the last window. */
  private panesOf(window: TimeWindow): Map<MapKey, Pane> {
    const end = window.maxTimestamp();
    let byKey = this.panes.get(end);
    if (byKey === undefined) {
      this.panes.set(end, (byKey = new Map()));
      const ends = this.ends;
      let i = ends.length;
      while (i > 0 && ends[i - 1]! > end) i--;
      ends.splice(i, 0, end);
    }
    this.lastWindow = window;
    this.lastPanes = byKey;
    return byKey;
  }

  private emitPartial(pane: Pane): void {
    const w = pane.window;
    this.output.collect(
      { kind: 'partial', key: pane.key, start: w.start, end: w.end, partial: pane.partial },
      w.maxTimestamp(),
    );
  }

  /** Sends the partials of every window whose maxTimestamp is at most `upTo`, oldest first. */
  private flush(upTo: number): void {
    const ends = this.ends;
    let n = 0;
    while (n < ends.length && ends[n]! <= upTo) {
      const end = ends[n]!;
      const byKey = this.panes.get(end)!;
      this.panes.delete(end);
      for (const pane of byKey.values()) this.emitPartial(pane);
      n++;
    }
    if (n === 0) return;
    ends.splice(0, n);
    this.lastWindow = undefined;
    this.lastPanes = undefined;
  }

  override processWatermark(watermark: number): void {
    if (watermark > this.watermark) {
      this.watermark = watermark;
      // NOTE: the partials of the windows this watermark ends go before it (the global operator
      // fires them on it), and after every element that came before it.
      if (this.ends.length > 0 && this.ends[0]! <= watermark) this.flush(watermark);
    }
    super.processWatermark(watermark);
  }

  /**
   * NOTE: an idle channel leaves the global operator's watermark minimum, which may then pass the
   * end of windows this subtask holds partials of, and when the channel is active again it counts
   * only once its watermark has caught up, which this subtask cannot see. So before going idle it
   * sends every partial (its windows have not ended: the global operator still takes them), and
   * from then on it passes every element on unaggregated until the job restarts, for the global
   * operator to judge exactly as the unsplit one would.
   */
  override processIdle(idle: boolean): void {
    if (idle && !this.passThrough) {
      this.flush(Number.POSITIVE_INFINITY);
      this.passThrough = true;
    }
    super.processIdle(idle);
  }

  override snapshotState(_checkpointId: number): void {
    // NOTE: the whole list, at every checkpoint: it holds one entry per key and open window of this
    // subtask, few where pre-aggregation pays (few keys), and the encoding that follows copies it.
    const stored: StoredPane[] = [];
    for (const end of this.ends)
      for (const p of this.panes.get(end)!.values())
        stored.push([p.key, p.window.start, p.window.end, p.partial]);
    this.state.update(stored);
  }
}

/**
 * @internal the global half of a pre-aggregated window: the window operator of the unsplit job,
 * fed partial results (merged into their window) and elements (handled as always).
 */
export class GlobalWindowOperator<K extends Key, IN> extends WindowOperator<K, IN, TimeWindow> {
  override processElement(record: IN, timestamp: number): void {
    const r = record as unknown as PreAggregated<IN>;
    if (r.kind === 'partial') this.mergePartial(r.key, new TimeWindow(r.start, r.end), r.partial);
    else super.processElement(r.value, timestamp);
  }
}
