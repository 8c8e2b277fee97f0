/**
 * From the snapshots of an operator's subtasks to what each subtask of a new run starts from: a
 * key group's deltas applied on its last whole snapshot, and key groups and operator state
 * redistributed to another parallelism (rescaling).
 */
import { TidemarkError } from '../errors.js';
import type { Key } from '../hash.js';
import { canonicalKey, type MapKey } from '../key-codec.js';
import { KeyGroupRange } from '../key-groups.js';
import { redistributeOperatorState } from '../operator-state.js';
import type { KeyGroupSnapshot, OperatorSubtaskState } from './types.js';

/**
 * A key group's state after deltas (oldest first): the previous state without the keys any delta
 * replaces, then, per key, the entries and timers of the newest delta that replaced it. One pass
 * over the previous state, however many deltas.
 */
export function applyKeyGroupDeltas(
  previous: KeyGroupSnapshot,
  deltas: readonly KeyGroupSnapshot[],
): KeyGroupSnapshot {
  if (deltas.length === 0) return previous;
  // The newest delta that replaced each key.
  const owner = new Map<MapKey, number>();
  let whole = -1;
  for (let d = deltas.length - 1; d >= 0; d--) {
    const replaces = deltas[d]!.replaces;
    if (replaces === undefined) {
      whole = d;
      break;
    }
    for (const k of replaces) if (!owner.has(k)) owner.set(k, d);
  }
  const sources: [KeyGroupSnapshot, (k: MapKey) => boolean][] = [];
  const base = whole >= 0 ? deltas[whole]! : previous;
  sources.push([base, (k) => !owner.has(k)]);
  for (let d = whole + 1; d < deltas.length; d++) sources.push([deltas[d]!, (k) => owner.get(k) === d]);
  const state: KeyGroupSnapshot['state'] = {};
  const timers: KeyGroupSnapshot['timers'] = {};
  for (const [src, keep] of sources) {
    for (const [name, t] of Object.entries(src.state)) {
      const into = (state[name] ??= { kind: t.kind, namespaced: t.namespaced, data: [] }).data;
      const d = t.data;
      if (!t.namespaced) {
        for (let i = 0; i < d.length; i += 2) if (keep(d[i] as MapKey)) into.push(d[i], d[i + 1]);
      } else
        for (let i = 0; i < d.length; ) {
          const end = i + 2 + 2 * (d[i + 1] as number);
          if (keep(d[i] as MapKey)) for (let j = i; j < end; j++) into.push(d[j]);
          i = end;
        }
    }
    for (const [name, t] of Object.entries(src.timers)) {
      const into = (timers[name] ??= { event: [], processing: [] });
      for (const [from, to] of [
        [t.event, into.event],
        [t.processing, into.processing],
      ] as const)
        for (let i = 0; i < from.length; i += 3)
          if (keep(canonicalKey(from[i] as Key))) to.push(from[i], from[i + 1], from[i + 2]);
    }
  }
  for (const [name, t] of Object.entries(state)) if (t.data.length === 0) delete state[name];
  return { state, timers };
}

/**
 * What subtask `subtaskIndex` of `parallelism` starts from, given the snapshots of every subtask
 * of the operator's previous run (at any parallelism): the key groups it now owns (with their
 * timers) and its share of the operator state.
 */
export function restoreForSubtask(
  previous: readonly OperatorSubtaskState[],
  subtaskIndex: number,
  parallelism: number,
  maxParallelism: number,
): OperatorSubtaskState {
  const range = KeyGroupRange.forSubtask(subtaskIndex, parallelism, maxParallelism);
  let keyGroups: Map<number, KeyGroupSnapshot> | undefined;
  for (const s of previous) {
    if (s.keyGroups === undefined) continue;
    keyGroups ??= new Map();
    if (s.maxParallelism !== maxParallelism)
      throw new TidemarkError(
        'STATE_ERROR',
        `operator ${s.operatorId}: the snapshot was taken with maxParallelism ${s.maxParallelism}, but the job runs it with maxParallelism ${maxParallelism}; maxParallelism cannot change across a restore`,
        { operatorId: s.operatorId },
      );
    for (const [g, kg] of s.keyGroups) if (range.contains(g)) keyGroups.set(g, kg);
  }
  const ordered = [...previous].sort((a, b) => a.subtaskIndex - b.subtaskIndex);
  const out: OperatorSubtaskState = {
    operatorId: previous[0]?.operatorId ?? '',
    subtaskIndex,
    parallelism,
    maxParallelism,
    operatorState: redistributeOperatorState(
      ordered.map((s) => s.operatorState),
      subtaskIndex,
      parallelism,
    ),
  };
  if (keyGroups !== undefined) out.keyGroups = keyGroups;
  return out;
}

/**
 * Subtask states decoded from a checkpoint for one run: nothing else refers to their key groups,
 * so the subtask that restores one may drop its state tables once its backend has loaded them
 * (a restore of a state larger than memory must not keep a decoded copy of it for the whole run).
 */
export const RELEASABLE_RESTORES = new WeakSet<OperatorSubtaskState>();
