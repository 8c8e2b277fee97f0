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
import type { Window } from './windows.js';

/** What `addWindow` calls when windows merge (before the state is merged, the caller does it). */
export type MergeFunction<W> = (
  mergeResult: W,
  mergedWindows: readonly W[],
  stateWindowResult: W,
  mergedStateWindows: readonly W[],
) => void;

/** The stored form: `[window, state window]` pairs. */
export type MergingWindowSetState<W> = [W, W][];

/** @internal the windows of the current key and their state windows. */
export class MergingWindowSet<W extends Window> {
  /** Window namespace → [window, state window]. */
  private readonly mapping = new Map<string | number, [W, W]>();
  private changed = false;

  constructor(
    private readonly assigner: MergingWindowAssigner<unknown, W>,
    private readonly state: ValueState<MergingWindowSetState<W>>,
  ) {
    const stored = state.value();
    if (stored !== undefined)
      for (const [w, s] of stored) {
        const window = assigner.restoreWindow(w);
        this.mapping.set(window.namespace(), [window, assigner.restoreWindow(s)]);
      }
  }

  /** Writes the mapping back to state if it changed. */
  persist(): void {
    if (!this.changed) return;
    this.changed = false;
    this.state.update(this.mapping.size === 0 ? undefined : [...this.mapping.values()]);
  }

  /** The state window of an in-flight window, or `undefined`. */
  getStateWindow(window: W): W | undefined {
    return this.mapping.get(window.namespace())?.[1];
  }

  /** Removes a window (its state was cleared). */
  retireWindow(window: W): void {
    if (!this.mapping.delete(window.namespace()))
      throw new Error(`Window ${window} is not in in-flight window set.`);
    this.changed = true;
  }

  /**
   * Adds a new window, merging it (and whatever it bridges) with in-flight windows. Returns the
   * window the new one ended up in. `mergeFunction` is called for every merge that changes a
   * window, with the state window the result keeps and the state windows to merge into it.
   */
  addWindow(newWindow: W, mergeFunction: MergeFunction<W>): W {
    const windows: W[] = [];
    for (const [w] of this.mapping.values()) windows.push(w);
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
      const mergedStateWindow = this.mapping.get(mergedWindows[0]!.namespace())![1];
      const mergedStateWindows: W[] = [];
      for (const m of mergedWindows) {
        const entry = this.mapping.get(m.namespace());
        if (entry === undefined) continue;
        this.mapping.delete(m.namespace());
        if (entry[1].namespace() !== mergedStateWindow.namespace()) mergedStateWindows.push(entry[1]);
      }
      this.mapping.set(mergeResult.namespace(), [mergeResult, mergedStateWindow]);
      // An in-flight window that only absorbed the new window, without growing, merges nothing.
      const ns = mergeResult.namespace();
      if (!(mergedWindows.length === 1 && mergedWindows[0]!.namespace() === ns))
        mergeFunction(mergeResult, mergedWindows, mergedStateWindow, mergedStateWindows);
    }
    // The new window is on its own.
    if (results.length === 0 || (resultWindow === newWindow && !mergedNewWindow))
      this.mapping.set(resultWindow.namespace(), [resultWindow, resultWindow]);
    this.changed = true;
    return resultWindow;
  }
}
