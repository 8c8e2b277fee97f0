/**
 * Windows: a {@link TimeWindow} `[start, end)` of event or processing time, and the single
 * {@link GlobalWindow} (Flink's `TimeWindow` and `GlobalWindow`).
 */
import { IncompatibleCheckpointError } from '../../state/snapshot/format.js';

/** A finite (or, for the global window, endless) group of elements. */
export abstract class Window {
  /** The largest timestamp that still belongs to this window. */
  abstract maxTimestamp(): number;
  /** The canonical form of this window, under which its state and timers are stored. */
  abstract namespace(): string | number;
}

/** A window of time `[start, end)`: `start` inclusive, `end` exclusive. */
export class TimeWindow extends Window {
  private ns: string | undefined = undefined;

  constructor(
    readonly start: number,
    readonly end: number,
  ) {
    super();
  }

  /** `end - 1`: the last millisecond in the window. */
  maxTimestamp(): number {
    return this.end - 1;
  }

  /** `start:end`. */
  namespace(): string {
    // NOTE: computed once per window object; assigners reuse window objects where they can, so the
    // per-element path builds no string.
    let ns = this.ns;
    if (ns === undefined) this.ns = ns = `${this.start}:${this.end}`;
    return ns;
  }

  /** True if the windows overlap or touch (Flink: `start <= other.end && end >= other.start`). */
  intersects(other: TimeWindow): boolean {
    return this.start <= other.end && this.end >= other.start;
  }

  /** The smallest window that covers both. */
  cover(other: TimeWindow): TimeWindow {
    return new TimeWindow(Math.min(this.start, other.start), Math.max(this.end, other.end));
  }

  /** True if `other` is the same window. */
  equals(other: unknown): boolean {
    return other instanceof TimeWindow && other.start === this.start && other.end === this.end;
  }

  override toString(): string {
    return `TimeWindow{start=${this.start}, end=${this.end}}`;
  }

  /** Plain data (what snapshots hold). */
  toJSON(): { start: number; end: number } {
    return { start: this.start, end: this.end };
  }

  /** A window from its plain-data form (`{ start, end }`), e.g. a restored timer namespace. */
  static fromData(data: unknown): TimeWindow {
    if (data instanceof TimeWindow) return data;
    const d = data as { start?: unknown; end?: unknown } | null;
    if (d === null || typeof d !== 'object' || typeof d.start !== 'number' || typeof d.end !== 'number')
      throw new IncompatibleCheckpointError(`not a TimeWindow: ${JSON.stringify(data)}`);
    return new TimeWindow(d.start, d.end);
  }

  /**
   * The start of the window of size `size` with offset `offset` that holds `timestamp`:
   * `timestamp - ((timestamp - offset) % size + size) % size`, correct for negative values
   * (Flink's `TimeWindow.getWindowStartWithOffset`).
   */
  static getWindowStartWithOffset(timestamp: number, offset: number, size: number): number {
    return timestamp - ((((timestamp - offset) % size) + size) % size);
  }

  /**
   * Merges overlapping or touching windows (Flink's `TimeWindow.mergeWindows`): sorts them by start
   * and calls `merge(toBeMerged, result)` for every group of more than one window.
   */
  static mergeWindows(
    windows: readonly TimeWindow[],
    merge: (toBeMerged: TimeWindow[], mergeResult: TimeWindow) => void,
  ): void {
    const sorted = windows.slice().sort((a, b) => a.start - b.start);
    let current: TimeWindow | undefined;
    let group: TimeWindow[] = [];
    for (const w of sorted) {
      if (current === undefined) {
        current = w;
        group = [w];
      } else if (current.intersects(w)) {
        current = current.cover(w);
        group.push(w);
      } else {
        if (group.length > 1) merge(group, current);
        current = w;
        group = [w];
      }
    }
    // NOTE: Flink collects a group in a set, so two equal windows are one and are not reported
    // as a merge. We report them (as a list): the merging window set then keeps the existing
    // window's state window instead of resetting it (which, in Flink, could lose the state of a
    // dynamic-gap session whose merged extent equals a new element's window).
    if (current !== undefined && group.length > 1) merge(group, current);
  }
}

/** The one window of {@link GlobalWindows}: every element of a key, forever. */
export class GlobalWindow extends Window {
  private static readonly INSTANCE = new GlobalWindow();

  private constructor() {
    super();
  }

  /** The global window. */
  static get(): GlobalWindow {
    return GlobalWindow.INSTANCE;
  }

  /** `+Infinity` (Flink's `Long.MAX_VALUE`). */
  maxTimestamp(): number {
    return Number.POSITIVE_INFINITY;
  }

  /** A constant. */
  namespace(): number {
    return 0;
  }

  override toString(): string {
    return 'GlobalWindow';
  }

  toJSON(): string {
    return 'GlobalWindow';
  }
}

/**
 * A window from its plain-data form (what `toJSON` gives, as in snapshots): a {@link Window} as
 * is, `'GlobalWindow'` as the global window, `{ start, end }` as a {@link TimeWindow}.
 */
export function windowFromData(data: unknown): Window {
  if (data instanceof Window) return data;
  if (data === 'GlobalWindow') return GlobalWindow.get();
  return TimeWindow.fromData(data);
}
