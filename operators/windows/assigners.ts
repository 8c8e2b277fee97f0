/**
 * Window assigners (Flink's `WindowAssigner`s): which windows an element belongs to, the default
 * trigger, and whether windows are in event or processing time.
 *
 * Tumbling and sliding windows start at `ts - ((ts - offset) % size + size) % size` (correct for
 * negative timestamps and offsets). Session windows start as `[ts, ts + gap)` per element and merge
 * when they overlap or touch.
 */
import { InvalidArgumentError, InvalidRecordError } from '../../state/errors.js';
import { NO_TIMESTAMP } from '../contract.js';
import { EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, type Trigger } from './triggers.js';
import { GlobalWindow, TimeWindow, type Window, windowFromData } from './windows.js';

/** What an assigner can ask the operator. */
export interface WindowAssignerContext {
  /** The current processing time. */
  getCurrentProcessingTime(): number;
}

/** Assigns elements to windows (Flink's `WindowAssigner`). */
export abstract class WindowAssigner<T, W extends Window> {
  /**
   * The windows `element` (with event timestamp `timestamp`) belongs to. The returned array may be
   * reused for later elements: do not modify it.
   */
  abstract assignWindows(element: T, timestamp: number, context: WindowAssignerContext): readonly W[];
  /** The trigger used when `WindowedStream.trigger` is not called. */
  abstract getDefaultTrigger(): Trigger<T, W>;
  /** True for event-time windows (lateness and cleanup follow the watermark). */
  abstract isEventTime(): boolean;
  /**
   * A window from its plain-data form (restored timers and state hold windows as plain data). The
   * default handles {@link TimeWindow} and {@link GlobalWindow}; override it for other window types.
   */
  restoreWindow(data: unknown): W {
    return windowFromData(data) as W;
  }
  toString(): string {
    return `${this.constructor.name}()`;
  }
}

/** An assigner whose windows can merge (session windows). */
export abstract class MergingWindowAssigner<T, W extends Window> extends WindowAssigner<T, W> {
  /** Calls `merge(toBeMerged, mergeResult)` for every group of `windows` that merges into one. */
  abstract mergeWindows(windows: readonly W[], merge: (toBeMerged: W[], mergeResult: W) => void): void;
}

function checkMs(owner: string, what: string, v: number, positive: boolean): void {
  if (!Number.isSafeInteger(v) || (positive && v <= 0))
    throw new InvalidArgumentError(
      `${owner}: ${what} must be ${positive ? 'a positive' : 'an'} integer number of milliseconds, got ${v}`,
    );
}

function checkTimestamp(owner: string, timestamp: number): void {
  if (timestamp === NO_TIMESTAMP)
    throw new InvalidRecordError(
      `Record has no timestamp (NO_TIMESTAMP = -Infinity), but ${owner} assigns windows by event time. ` +
        'Is the time characteristic meant to be processing time (use the ProcessingTime window assigners), ' +
        'or did you forget to call assignTimestampsAndWatermarks(...) or to give the source a WatermarkStrategy?',
    );
  if (!Number.isFinite(timestamp))
    throw new InvalidRecordError(`${owner}: cannot assign windows to a record with timestamp ${timestamp}`);
}

/**
 * Tumbling windows: `[start, start + size)` with `start = ts - ((ts - offset) % size + size) % size`.
 * Caches the last window so that consecutive elements of one window share the array and window.
 */
class TumblingAssigner {
  private last: TimeWindow[] | undefined = undefined;
  constructor(
    readonly sizeMs: number,
    readonly offsetMs: number,
  ) {}
  assign(time: number): readonly TimeWindow[] {
    const last = this.last;
    // NOTE: windows partition time, so a time inside the last window is in no other. Checking
    // first skips the start's computation: epoch-millisecond times are not small integers, and
    // `%` on other numbers is a floating-point modulo, a large part of the per-element cost.
    if (last !== undefined && time >= last[0]!.start && time < last[0]!.end) return last;
    const start = TimeWindow.getWindowStartWithOffset(time, this.offsetMs, this.sizeMs);
    return (this.last = [new TimeWindow(start, start + this.sizeMs)]);
  }
}

/** Sliding windows: every `[start, start + size)` holding `ts`, starts `slide` apart, latest first. */
class SlidingAssigner {
  private last: TimeWindow[] | undefined = undefined;
  private lastStart = Number.NaN;
  constructor(
    readonly sizeMs: number,
    readonly slideMs: number,
    readonly offsetMs: number,
  ) {}
  assign(time: number): readonly TimeWindow[] {
    // NOTE: the latest window's start is that of the last time while `time` stays within one
    // slide of it (see TumblingAssigner on why the modulo is worth skipping).
    const lastStart =
      time >= this.lastStart && time < this.lastStart + this.slideMs
        ? this.lastStart
        : TimeWindow.getWindowStartWithOffset(time, this.offsetMs, this.slideMs);
    const lowest = time - this.sizeMs;
    let n = 0;
    for (let start = lastStart; start > lowest; start -= this.slideMs) n++;
    const last = this.last;
    if (last !== undefined && this.lastStart === lastStart && last.length === n) return last;
    const windows: TimeWindow[] = [];
    for (let start = lastStart; start > lowest; start -= this.slideMs)
      windows.push(new TimeWindow(start, start + this.sizeMs));
    this.lastStart = lastStart;
    return (this.last = windows);
  }
}

function checkTumbling(owner: string, sizeMs: number, offsetMs: number): void {
  checkMs(owner, 'the size', sizeMs, true);
  checkMs(owner, 'the offset', offsetMs, false);
  if (Math.abs(offsetMs) >= sizeMs)
    throw new InvalidArgumentError(
      `${owner} parameters must satisfy abs(offset) < size, got size ${sizeMs} and offset ${offsetMs}`,
    );
}

function checkSliding(owner: string, sizeMs: number, slideMs: number, offsetMs: number): void {
  checkMs(owner, 'the size', sizeMs, true);
  checkMs(owner, 'the slide', slideMs, true);
  checkMs(owner, 'the offset', offsetMs, false);
  // NOTE: as in Flink, the offset is bounded by the slide (windows start at multiples of it).
  if (Math.abs(offsetMs) >= slideMs)
    throw new InvalidArgumentError(
      `${owner} parameters must satisfy abs(offset) < slide and size > 0, got size ${sizeMs}, slide ${slideMs} and offset ${offsetMs}`,
    );
}

/** Tumbling (fixed-size, non-overlapping) windows of event time. */
export class TumblingEventTimeWindows extends WindowAssigner<unknown, TimeWindow> {
  private readonly windows: TumblingAssigner;
  private constructor(
    readonly sizeMs: number,
    readonly offsetMs: number,
  ) {
    super();
    this.windows = new TumblingAssigner(sizeMs, offsetMs);
  }
  /** Windows of `sizeMs`, shifted by `offsetMs` (|offset| < size) from the epoch. */
  static of(sizeMs: number, offsetMs = 0): TumblingEventTimeWindows {
    checkTumbling('TumblingEventTimeWindows', sizeMs, offsetMs);
    return new TumblingEventTimeWindows(sizeMs, offsetMs);
  }
  assignWindows(
    _element: unknown,
    timestamp: number,
    _context?: WindowAssignerContext,
  ): readonly TimeWindow[] {
    checkTimestamp('TumblingEventTimeWindows', timestamp);
    return this.windows.assign(timestamp);
  }
  getDefaultTrigger(): Trigger<unknown, TimeWindow> {
    return EventTimeTrigger.create();
  }
  isEventTime(): boolean {
    return true;
  }
  override toString(): string {
    return `TumblingEventTimeWindows(${this.sizeMs})`;
  }
}

/** Sliding (fixed-size, overlapping) windows of event time: a new window every `slideMs`. */
export class SlidingEventTimeWindows extends WindowAssigner<unknown, TimeWindow> {
  private readonly windows: SlidingAssigner;
  private constructor(
    readonly sizeMs: number,
    readonly slideMs: number,
    readonly offsetMs: number,
  ) {
    super();
    this.windows = new SlidingAssigner(sizeMs, slideMs, offsetMs);
  }
  /** Windows of `sizeMs` starting every `slideMs`, shifted by `offsetMs` (|offset| < slide). */
  static of(sizeMs: number, slideMs: number, offsetMs = 0): SlidingEventTimeWindows {
    checkSliding('SlidingEventTimeWindows', sizeMs, slideMs, offsetMs);
    return new SlidingEventTimeWindows(sizeMs, slideMs, offsetMs);
  }
  assignWindows(
    _element: unknown,
    timestamp: number,
    _context?: WindowAssignerContext,
  ): readonly TimeWindow[] {
    checkTimestamp('SlidingEventTimeWindows', timestamp);
    return this.windows.assign(timestamp);
  }
  getDefaultTrigger(): Trigger<unknown, TimeWindow> {
    return EventTimeTrigger.create();
  }
  isEventTime(): boolean {
    return true;
  }
  override toString(): string {
    return `SlidingEventTimeWindows(${this.sizeMs}, ${this.slideMs})`;
  }
}

/** Tumbling windows of processing time (the time at which the operator sees the element). */
export class TumblingProcessingTimeWindows extends WindowAssigner<unknown, TimeWindow> {
  private readonly windows: TumblingAssigner;
  private constructor(
    readonly sizeMs: number,
    readonly offsetMs: number,
  ) {
    super();
    this.windows = new TumblingAssigner(sizeMs, offsetMs);
  }
  /** Windows of `sizeMs` of processing time, shifted by `offsetMs` (|offset| < size). */
  static of(sizeMs: number, offsetMs = 0): TumblingProcessingTimeWindows {
    checkTumbling('TumblingProcessingTimeWindows', sizeMs, offsetMs);
    return new TumblingProcessingTimeWindows(sizeMs, offsetMs);
  }
  assignWindows(
    _element: unknown,
    _timestamp: number,
    context: WindowAssignerContext,
  ): readonly TimeWindow[] {
    return this.windows.assign(context.getCurrentProcessingTime());
  }
  getDefaultTrigger(): Trigger<unknown, TimeWindow> {
    return ProcessingTimeTrigger.create();
  }
  isEventTime(): boolean {
    return false;
  }
  override toString(): string {
    return `TumblingProcessingTimeWindows(${this.sizeMs})`;
  }
}

/** Sliding windows of processing time. */
export class SlidingProcessingTimeWindows extends WindowAssigner<unknown, TimeWindow> {
  private readonly windows: SlidingAssigner;
  private constructor(
    readonly sizeMs: number,
    readonly slideMs: number,
    readonly offsetMs: number,
  ) {
    super();
    this.windows = new SlidingAssigner(sizeMs, slideMs, offsetMs);
  }
  /** Windows of `sizeMs` of processing time starting every `slideMs`, shifted by `offsetMs`. */
  static of(sizeMs: number, slideMs: number, offsetMs = 0): SlidingProcessingTimeWindows {
    checkSliding('SlidingProcessingTimeWindows', sizeMs, slideMs, offsetMs);
    return new SlidingProcessingTimeWindows(sizeMs, slideMs, offsetMs);
  }
  assignWindows(
    _element: unknown,
    _timestamp: number,
    context: WindowAssignerContext,
  ): readonly TimeWindow[] {
    return this.windows.assign(context.getCurrentProcessingTime());
  }
  getDefaultTrigger(): Trigger<unknown, TimeWindow> {
    return ProcessingTimeTrigger.create();
  }
  isEventTime(): boolean {
    return false;
  }
  override toString(): string {
    return `SlidingProcessingTimeWindows(${this.sizeMs}, ${this.slideMs})`;
  }
}

/** Extracts the session gap of an element (dynamic session windows); must be > 0. */
export type SessionWindowTimeGapExtractor<T> = (element: T) => number;

function mergeTimeWindows(
  windows: readonly TimeWindow[],
  merge: (toBeMerged: TimeWindow[], mergeResult: TimeWindow) => void,
): void {
  TimeWindow.mergeWindows(windows, merge);
}

function dynamicGap<T>(owner: string, extractor: SessionWindowTimeGapExtractor<T>, element: T): number {
  const gap = extractor(element);
  if (!Number.isSafeInteger(gap) || gap <= 0)
    throw new InvalidArgumentError(
      `${owner}: dynamic session time gap must satisfy 0 < gap (an integer), got ${gap}`,
    );
  return gap;
}

function checkExtractor(owner: string, extractor: unknown): void {
  if (typeof extractor !== 'function')
    throw new InvalidArgumentError(`${owner}.withDynamicGap() needs a function from element to gap in ms`);
}

/** Session windows of event time: elements closer than `gap` (per key) form one window. */
export class EventTimeSessionWindows extends MergingWindowAssigner<unknown, TimeWindow> {
  private constructor(readonly gapMs: number) {
    super();
  }
  /** Sessions that end after `gapMs` without elements. */
  static withGap(gapMs: number): EventTimeSessionWindows {
    checkMs('EventTimeSessionWindows', 'the session gap', gapMs, true);
    return new EventTimeSessionWindows(gapMs);
  }
  /** Sessions whose gap is given per element by `extractor`. */
  static withDynamicGap<T>(extractor: SessionWindowTimeGapExtractor<T>): DynamicEventTimeSessionWindows<T> {
    checkExtractor('EventTimeSessionWindows', extractor);
    return new DynamicEventTimeSessionWindows(extractor);
  }
  assignWindows(
    _element: unknown,
    timestamp: number,
    _context?: WindowAssignerContext,
  ): readonly TimeWindow[] {
    checkTimestamp('EventTimeSessionWindows', timestamp);
    return [new TimeWindow(timestamp, timestamp + this.gapMs)];
  }
  mergeWindows(
    windows: readonly TimeWindow[],
    merge: (toBeMerged: TimeWindow[], mergeResult: TimeWindow) => void,
  ): void {
    mergeTimeWindows(windows, merge);
  }
  getDefaultTrigger(): Trigger<unknown, TimeWindow> {
    return EventTimeTrigger.create();
  }
  isEventTime(): boolean {
    return true;
  }
  override toString(): string {
    return `EventTimeSessionWindows(${this.gapMs})`;
  }
}

/** Session windows of event time with a gap per element. */
export class DynamicEventTimeSessionWindows<T> extends MergingWindowAssigner<T, TimeWindow> {
  /** Use {@link EventTimeSessionWindows.withDynamicGap}. */
  constructor(readonly extractor: SessionWindowTimeGapExtractor<T>) {
    super();
  }
  assignWindows(element: T, timestamp: number, _context?: WindowAssignerContext): readonly TimeWindow[] {
    checkTimestamp('DynamicEventTimeSessionWindows', timestamp);
    const gap = dynamicGap('DynamicEventTimeSessionWindows', this.extractor, element);
    return [new TimeWindow(timestamp, timestamp + gap)];
  }
  mergeWindows(
    windows: readonly TimeWindow[],
    merge: (toBeMerged: TimeWindow[], mergeResult: TimeWindow) => void,
  ): void {
    mergeTimeWindows(windows, merge);
  }
  getDefaultTrigger(): Trigger<T, TimeWindow> {
    return EventTimeTrigger.create();
  }
  isEventTime(): boolean {
    return true;
  }
  override toString(): string {
    return 'DynamicEventTimeSessionWindows()';
  }
}

/** Session windows of processing time. */
export class ProcessingTimeSessionWindows extends MergingWindowAssigner<unknown, TimeWindow> {
  private constructor(readonly gapMs: number) {
    super();
  }
  /** Sessions that end after `gapMs` of processing time without elements. */
  static withGap(gapMs: number): ProcessingTimeSessionWindows {
    checkMs('ProcessingTimeSessionWindows', 'the session gap', gapMs, true);
    return new ProcessingTimeSessionWindows(gapMs);
  }
  /** Sessions whose gap is given per element by `extractor`. */
  static withDynamicGap<T>(
    extractor: SessionWindowTimeGapExtractor<T>,
  ): DynamicProcessingTimeSessionWindows<T> {
    checkExtractor('ProcessingTimeSessionWindows', extractor);
    return new DynamicProcessingTimeSessionWindows(extractor);
  }
  assignWindows(
    _element: unknown,
    _timestamp: number,
    context: WindowAssignerContext,
  ): readonly TimeWindow[] {
    const now = context.getCurrentProcessingTime();
    return [new TimeWindow(now, now + this.gapMs)];
  }
  mergeWindows(
    windows: readonly TimeWindow[],
    merge: (toBeMerged: TimeWindow[], mergeResult: TimeWindow) => void,
  ): void {
    mergeTimeWindows(windows, merge);
  }
  getDefaultTrigger(): Trigger<unknown, TimeWindow> {
    return ProcessingTimeTrigger.create();
  }
  isEventTime(): boolean {
    return false;
  }
  override toString(): string {
    return `ProcessingTimeSessionWindows(${this.gapMs})`;
  }
}

/** Session windows of processing time with a gap per element. */
export class DynamicProcessingTimeSessionWindows<T> extends MergingWindowAssigner<T, TimeWindow> {
  /** Use {@link ProcessingTimeSessionWindows.withDynamicGap}. */
  constructor(readonly extractor: SessionWindowTimeGapExtractor<T>) {
    super();
  }
  assignWindows(element: T, _timestamp: number, context: WindowAssignerContext): readonly TimeWindow[] {
    const now = context.getCurrentProcessingTime();
    const gap = dynamicGap('DynamicProcessingTimeSessionWindows', this.extractor, element);
    return [new TimeWindow(now, now + gap)];
  }
  mergeWindows(
    windows: readonly TimeWindow[],
    merge: (toBeMerged: TimeWindow[], mergeResult: TimeWindow) => void,
  ): void {
    mergeTimeWindows(windows, merge);
  }
  getDefaultTrigger(): Trigger<T, TimeWindow> {
    return ProcessingTimeTrigger.create();
  }
  isEventTime(): boolean {
    return false;
  }
  override toString(): string {
    return 'DynamicProcessingTimeSessionWindows()';
  }
}

const GLOBAL_WINDOWS: readonly GlobalWindow[] = Object.freeze([GlobalWindow.get()]);

/** One window per key holding every element; the default trigger never fires. */
export class GlobalWindows extends WindowAssigner<unknown, GlobalWindow> {
  private static readonly INSTANCE = new GlobalWindows();
  private constructor() {
    super();
  }
  /** The global-window assigner (use with a trigger, e.g. `CountTrigger`). */
  static create(): GlobalWindows {
    return GlobalWindows.INSTANCE;
  }
  assignWindows(
    _element?: unknown,
    _timestamp?: number,
    _context?: WindowAssignerContext,
  ): readonly GlobalWindow[] {
    return GLOBAL_WINDOWS;
  }
  getDefaultTrigger(): Trigger<unknown, GlobalWindow> {
    return NeverTrigger.create();
  }
  isEventTime(): boolean {
    return false;
  }
  override restoreWindow(_data?: unknown): GlobalWindow {
    return GlobalWindow.get();
  }
  override toString(): string {
    return 'GlobalWindows()';
  }
}

/**
 * @internal True if the assigner's windows are {@link TimeWindow}s merged as
 * `TimeWindow.mergeWindows` merges them: the session assigners, their `mergeWindows` not overridden.
 */
export function mergesAsTimeWindows(assigner: MergingWindowAssigner<never, Window>): boolean {
  const m = assigner.mergeWindows as unknown;
  return (
    m === EventTimeSessionWindows.prototype.mergeWindows ||
    m === DynamicEventTimeSessionWindows.prototype.mergeWindows ||
    m === ProcessingTimeSessionWindows.prototype.mergeWindows ||
    m === DynamicProcessingTimeSessionWindows.prototype.mergeWindows
  );
}
