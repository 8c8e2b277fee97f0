/**
 * The in-flight windows of one key for a merging assigner (Flink's `MergingWindowSet`): every
 * window maps to its *state window*, the namespace under which its contents are kept. When windows
 * merge, the result takes the state window of one of the merged windows and the others' state is
 * merged into it, so contents never move between namespaces more than needed.
 *
 * The mapping lives in keyed state (so it is snapshotted with the key) as plain `[window, state
 * window]` pairs; it is read per element or timer and written back by `persist` if it changed.
 */
import type { ValueState } from '../../state/descriptors.js';
import { TidemarkError } from '../../state/errors.js';
import { type MergingWindowAssigner, mergesAsTimeWindows } from './assigners.js';
import { TimeWindow, Window } from './windows.js';

/** What `addWindow` calls when windows merge (before the state is merged, the caller does it). */
export type MergeFunction<W> = (
  mergeResult: W,
  mergedWindows: readonly W[],
  stateWindowResult: W,
  mergedStateWindows: readonly W[],
) => void;

/** The stored form: `[window, state window]` pairs. */
export type MergingWindowSetState<W> = [W, W][];

/** Windows are the same when their namespaces are (time windows: compared without building it). */
function sameWindow(a: Window, b: Window): boolean {
  if (a === b) return true;
  if (a instanceof TimeWindow && b instanceof TimeWindow) return a.equals(b);
  return a.namespace() === b.namespace();
}

/**
 * @internal the windows of the current key and their state windows. One set serves an operator:
 * {@link load} reads the current key's windows.
 */
export class MergingWindowSet<W extends Window> {
  /**
   * `[window, state window]` pairs, as stored in state. Copied on the first change (the stored
   * array may be referenced by a snapshot being written); pairs are replaced, never mutated.
   */
  private pairs: [W, W][] = [];
  private changed = false;
  /** Time windows merged as `TimeWindow.mergeWindows` does (see {@link addTimeWindow}). */
  private readonly timeWindows: boolean;
  /**
   * Where the last {@link addWindow} put the new window: in flight on its own (`new`), merged
   * with in-flight windows into a changed window (`merged`: the merge function was called for
   * it), or into an in-flight window that it did not change (`absorbed`).
   */
  added: 'new' | 'merged' | 'absorbed' = 'new';

  constructor(
    private readonly assigner: MergingWindowAssigner<unknown, W>,
    private readonly state: ValueState<MergingWindowSetState<W>>,
  ) {
    this.timeWindows = mergesAsTimeWindows(assigner as MergingWindowAssigner<never, W>);
  }

  /** Reads the windows of the current key (unsaved changes of the previous key are dropped). */
  load(): this {
    const stored = this.state.value();
    this.changed = false;
    if (stored === undefined) this.pairs = [];
    else if (stored.length > 0 && !(stored[0]![0] instanceof Window)) {
      // Restored from a snapshot as plain data: made windows once, and written back as windows.
      const assigner = this.assigner;
      this.pairs = stored.map(([w, s]) => [assigner.restoreWindow(w), assigner.restoreWindow(s)]);
      this.changed = true;
    } else this.pairs = stored;
    return this;
  }

  /** The in-flight windows of the current key (as loaded). */
  windows(): W[] {
    return this.pairs.map(([w]) => w);
  }

  /** Writes the mapping back to state if it changed. */
  persist(): void {
    if (!this.changed) return;
    this.changed = false;
    this.state.update(this.pairs.length === 0 ? undefined : this.pairs);
  }

  /** The pairs, copied once before the first change. */
  private writable(): [W, W][] {
    if (!this.changed) {
      this.pairs = this.pairs.slice();
      this.changed = true;
    }
    return this.pairs;
  }

  private indexOf(window: W): number {
    const pairs = this.pairs;
    for (let i = 0; i < pairs.length; i++) if (sameWindow(pairs[i]![0], window)) return i;
    return -1;
  }

  /** The state window of an in-flight window, or `undefined`. */
  getStateWindow(window: W): W | undefined {
    const i = this.indexOf(window);
    return i < 0 ? undefined : this.pairs[i]![1];
  }

  /** Removes a window (its state was cleared). */
  retireWindow(window: W): void {
    const i = this.indexOf(window);
    if (i < 0) throw new TidemarkError('INTERNAL_ERROR', `Window ${window} is not in in-flight window set.`);
    this.writable().splice(i, 1);
  }

  /**
   * Adds a new window, merging it (and whatever it bridges) with in-flight windows. Returns the
   * window the new one ended up in. `mergeFunction` is called for every merge that changes a
   * window, with the state window the result keeps and the state windows to merge into it.
   */
  addWindow(newWindow: W, mergeFunction: MergeFunction<W>): W {
    this.added = 'new';
    if (this.timeWindows && this.pairs.length <= 1)
      return this.addTimeWindow(
        newWindow as unknown as TimeWindow,
        mergeFunction as unknown as MergeFunction<TimeWindow>,
      ) as unknown as W;
    const windows: W[] = [];
    for (const [w] of this.pairs) windows.push(w);
    windows.push(newWindow);

    const results: [W, W[]][] = [];
    this.assigner.mergeWindows(windows, (toBeMerged, mergeResult) => {
      results.push([mergeResult, toBeMerged]);
    });

    let resultWindow = newWindow;
    let mergedNewWindow = false;
    for (const [mergeResult, mergedWindows] of results) {
      // If the new window is among the merged ones, the merge result is where it ended up.
      const i = mergedWindows.indexOf(newWindow);
      const hasNew = i >= 0;
      if (hasNew) {
        mergedWindows.splice(i, 1);
        mergedNewWindow = true;
        resultWindow = mergeResult;
      }
      // The merge result keeps the state window of (any) one of the merged windows.
      const mergedStateWindow = this.getStateWindow(mergedWindows[0]!)!;
      const mergedStateWindows: W[] = [];
      const pairs = this.writable();
      for (const m of mergedWindows) {
        const at = this.indexOf(m);
        if (at < 0) continue;
        const stateWindow = pairs[at]![1];
        pairs.splice(at, 1);
        if (!sameWindow(stateWindow, mergedStateWindow)) mergedStateWindows.push(stateWindow);
      }
      this.set(mergeResult, mergedStateWindow);
      // An in-flight window that only absorbed the new window, without growing, merges nothing.
      if (!(mergedWindows.length === 1 && sameWindow(mergedWindows[0]!, mergeResult))) {
        if (hasNew) this.added = 'merged';
        mergeFunction(mergeResult, mergedWindows, mergedStateWindow, mergedStateWindows);
      } else if (hasNew) this.added = 'absorbed';
    }
    // The new window is on its own.
    if (results.length === 0 || (resultWindow === newWindow && !mergedNewWindow))
      this.set(resultWindow, resultWindow);
    return resultWindow;
  }

  /**
   * {@link addWindow} for time windows when the key has at most one in-flight window: what
   * `TimeWindow.mergeWindows` and the general path would do, without sorting or collecting.
   * (With one in-flight window the only possible merge is the new window with it.)
   */
  private addTimeWindow(n: TimeWindow, mergeFunction: MergeFunction<TimeWindow>): TimeWindow {
    const pairs = this.pairs as unknown as [TimeWindow, TimeWindow][];
    if (pairs.length === 1) {
      const [e, stateWindow] = pairs[0]!;
      if (e.intersects(n)) {
        if (e.start <= n.start && e.end >= n.end) {
          // Inside the in-flight window: the merge result is that window, unchanged.
          this.added = 'absorbed';
          return e;
        }
        const cover = e.cover(n);
        this.pairs = [[cover, stateWindow]] as unknown as [W, W][];
        this.changed = true;
        this.added = 'merged';
        mergeFunction(cover, [e], stateWindow, []);
        return cover;
      }
    }
    (this.writable() as unknown as [TimeWindow, TimeWindow][]).push([n, n]);
    return n;
  }

  /** Maps a window to its state window (replacing the window's pair if it has one). */
  private set(window: W, stateWindow: W): void {
    const pairs = this.writable();
    const i = this.indexOf(window);
    if (i >= 0) pairs[i] = [window, stateWindow];
    else pairs.push([window, stateWindow]);
  }
}
