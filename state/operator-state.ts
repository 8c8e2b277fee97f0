/**
 * Operator (non-keyed) state: named lists held by one subtask, for sources (split positions),
 * sinks (pending transactions) and broadcast state.
 *
 * On a restore at another parallelism the lists are redistributed as in Flink: `split` lists are
 * concatenated over the old subtasks and cut into even contiguous parts; `union` lists give every
 * new subtask all items; `broadcast` state gives every new subtask the copy of old subtask 0 (all
 * copies are equal).
 */
import type { ListState, ListStateDescriptor } from './descriptors.js';
import { StateError } from './errors.js';
import type { OperatorStateSnapshot, RedistributionMode } from './snapshot/types.js';

class OperatorListState<T> implements ListState<T> {
  items: T[] = [];
  constructor(readonly mode: RedistributionMode) {}
  get(): readonly T[] {
    return this.items;
  }
  add(value: T): void {
    this.items.push(value);
  }
  addAll(values: Iterable<T>): void {
    for (const v of values) this.items.push(v);
  }
  update(values: Iterable<T>): void {
    this.items = [...values];
  }
  clear(): void {
    this.items = [];
  }
}

/** The operator state of one subtask. */
export class OperatorStateStore {
  private readonly lists = new Map<string, OperatorListState<unknown>>();
  private restored: OperatorStateSnapshot = {};

  constructor(readonly owner: string) {}

  /** A list redistributed evenly on rescale (Flink's `getListState`). */
  getListState<T>(d: ListStateDescriptor<T>): ListState<T> {
    return this.list(d.name, 'split') as ListState<T>;
  }

  /** A list that every subtask receives whole on restore (Flink's `getUnionListState`). */
  getUnionListState<T>(d: ListStateDescriptor<T>): ListState<T> {
    return this.list(d.name, 'union') as ListState<T>;
  }

  /** @internal a list with the given mode (broadcast state uses `broadcast`). */
  list(name: string, mode: RedistributionMode): OperatorListState<unknown> {
    let l = this.lists.get(name);
    if (l !== undefined) {
      if (l.mode !== mode)
        throw new StateError(
          `${this.owner}: operator state '${name}' is already registered as ${l.mode} state, not ${mode} state`,
        );
      return l;
    }
    l = new OperatorListState(mode);
    const r = this.restored[name];
    if (r !== undefined) {
      if (r.mode !== mode)
        throw new StateError(
          `${this.owner}: restored operator state '${name}' is ${r.mode} state, but the job registers it as ${mode} state`,
        );
      l.items = r.items.slice();
    }
    this.lists.set(name, l);
    return l;
  }

  /** True if state was restored into this store. */
  get isRestored(): boolean {
    return Object.keys(this.restored).length > 0;
  }

  /** Names of restored lists (for checks on unused state). */
  restoredNames(): string[] {
    return Object.keys(this.restored);
  }

  snapshot(): OperatorStateSnapshot {
    const out: OperatorStateSnapshot = {};
    for (const [name, l] of this.lists) out[name] = { mode: l.mode, items: l.items.slice() };
    // NOTE: restored lists that the operator did not ask for (yet) are carried over, not dropped.
    for (const [name, r] of Object.entries(this.restored))
      if (!(name in out)) out[name] = { mode: r.mode, items: r.items.slice() };
    return out;
  }

  /** Sets the state this subtask starts from (see {@link redistributeOperatorState}). */
  restore(snapshot: OperatorStateSnapshot): void {
    this.restored = snapshot;
    for (const [name, l] of this.lists) {
      const r = snapshot[name];
      if (r !== undefined) l.items = r.items.slice();
    }
  }
}

/**
 * The operator state subtask `index` of `parallelism` starts from, given the snapshots of all
 * subtasks of the previous run (in subtask order, any count).
 */
export function redistributeOperatorState(
  previous: readonly OperatorStateSnapshot[],
  index: number,
  parallelism: number,
): OperatorStateSnapshot {
  const names = new Set<string>();
  for (const s of previous) for (const n of Object.keys(s)) names.add(n);
  const out: OperatorStateSnapshot = {};
  for (const name of names) {
    let mode: RedistributionMode | undefined;
    const all: unknown[] = [];
    for (const s of previous) {
      const part = s[name];
      if (part === undefined) continue;
      mode ??= part.mode;
      if (part.mode === 'broadcast') {
        if (all.length === 0) all.push(...part.items);
      } else all.push(...part.items);
    }
    if (mode === undefined) continue;
    if (mode === 'split') {
      const from = Math.floor((index * all.length) / parallelism);
      const to = Math.floor(((index + 1) * all.length) / parallelism);
      out[name] = { mode, items: all.slice(from, to) };
    } else if (mode === 'broadcast' && previous.length === parallelism) {
      // Same parallelism: each subtask keeps its own copy.
      out[name] = { mode, items: (previous[index]?.[name]?.items ?? all).slice() };
    } else {
      out[name] = { mode, items: all };
    }
  }
  return out;
}
