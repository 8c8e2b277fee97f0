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
import type { MergingWindowAssigner } from './assigners.js';
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

/** @internal the windows of the current key and their state windows. */
export class MergingWindowSet<W extends Window> {
  /**
   * `[window, state window]` pairs, as stored in state. Copied on the first change (the stored
   * array may be referenced by a snapshot being written); pairs are replaced, never mutated.
   */
  private pairs: [W, W][];
  private changed = false;

  constructor(
    private readonly assigner: MergingWindowAssigner<unknown, W>,
    private readonly state: ValueState<MergingWindowSetState<W>>,
  ) {
    const stored = state.value();
    if (stored === undefined) this.pairs = [];
    else if (stored.length > 0 && !(stored[0]![0] instanceof Window)) {
      // Restored from a snapshot as plain data: made windows once, and written back as windows.
      this.pairs = stored.map(([w, s]) => [assigner.restoreWindow(w), assigner.restoreWindow(s)]);
      this.changed = true;
    } else this.pairs = stored;
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
    if (i < 0) throw new Error(`Window ${window} is not in in-flight window set.`);
    this.writable().splice(i, 1);
  }

  /**
   * Adds a new window, merging it (and whatever it bridges) with in-flight windows. Returns the
   * window the new one ended up in. `mergeFunction` is called for every merge that changes a
   * window, with the state window the result keeps and the state windows to merge into it.
   */
  addWindow(newWindow: W, mergeFunction: MergeFunction<W>): W {
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
      if (i >= 0) {
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
      if (!(mergedWindows.length === 1 && sameWindow(mergedWindows[0]!, mergeResult)))
        mergeFunction(mergeResult, mergedWindows, mergedStateWindow, mergedStateWindows);
    }
    // The new window is on its own.
    if (results.length === 0 || (resultWindow === newWindow && !mergedNewWindow))
      this.set(resultWindow, resultWindow);
    return resultWindow;
  }

  /** Maps a window to its state window (replacing the window's pair if it has one). */
  private set(window: W, stateWindow: W): void {
    const pairs = this.writable();
    const i = this.indexOf(window);
    if (i >= 0) pairs[i] = [window, stateWindow];
    else pairs.push([window, stateWindow]);
  }
}
