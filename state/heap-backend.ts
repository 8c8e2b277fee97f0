/**
 * The heap keyed-state backend: keyed state in JavaScript `Map`s, one per state and key group.
 *
 * NOTE: tables are partitioned by key group so that a snapshot can be taken, stored and
 * redistributed per key group (rescaling), and so that a checkpoint can skip key groups that did not
 * change (`dirty` tracking). Values are stored as given (no copy on write to the table), so a value
 * that user code mutates after `update` is mutated in the table too, as with Flink's heap backend.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type {
  AggregatingState,
  AggregatingStateDescriptor,
  ListState,
  ListStateDescriptor,
  MapState,
  MapStateDescriptor,
  ReducingState,
  ReducingStateDescriptor,
  StateDescriptor,
  StateKind,
  StateTtlConfig,
  ValueState,
  ValueStateDescriptor,
} from './descriptors.js';
import { InvalidArgumentError, InvalidRecordError, registerErrorClass, StateError } from './errors.js';
import { describeValue, type Key } from './hash.js';
import { canonicalKey, decodeKey, isKey, type MapKey } from './key-codec.js';
import { type KeyGroupRange, keyGroupFor } from './key-groups.js';
import type { KeyedStateBackend, Namespace, NamespaceEntries, SnapshotPart } from './keyed-backend.js';
import { type EncodableTables, TableColumnsBuilder } from './snapshot/key-group-codec.js';
import type { KeyGroupSnapshot } from './snapshot/types.js';

export type { Namespace } from './keyed-backend.js';

/** The state tables of one key group, by state name (a {@link KeyGroupSnapshot}'s `state`). */
type Tables = KeyGroupSnapshot['state'];

/** Options of a {@link HeapKeyedStateBackend}. */
export interface HeapKeyedStateBackendOptions {
  maxParallelism: number;
  keyGroupRange: KeyGroupRange;
  /** Processing time, for state TTL. */
  now: () => number;
  /** Names the owner (operator) in error messages. */
  owner: string;
}

/** A key group's log of changed keys is rid of repeats at this length at the earliest. */
const DEDUP_FIRST = 64;
/**
 * A value a snapshot may read later than it was written: a number, string or boolean. What else a
 * value may be is an object, which a function may change in place without a write (or a symbol,
 * which the encoder refuses: that error belongs to the synchronous part).
 */
function isPlain(v: unknown): boolean {
  const t = typeof v;
  return t === 'number' || t === 'string' || t === 'boolean';
}

/** Work between event-loop turns while a checkpoint's deferred snapshots are taken (ms). */
const LATER_SLICE_MS = 10;

interface TtlValue<V> {
  v: V;
  t: number;
}

/**
 * Whether a key group with `changed` of its `keys` changed is written whole rather than as a delta:
 * above a quarter. A whole group is collected by walking its maps (and reuses its timers when they
 * did not change), a delta by looking up each changed key, so above about a quarter the whole
 * group costs less on the job's thread; measured on the checkpoint benchmark (1 M keys, about
 * half changing per second), a quarter gave 3-11 % more throughput than a half.
 */
export function worthWritingWhole(changed: number, keys: number): boolean {
  return 4 * changed > keys;
}

/**
 * The entry of a key in a namespaced table while it has one namespace, where the table keeps an
 * entry per key (the LMDB backend's cache; the heap backend keeps such keys in {@link Slots}, and
 * gives this as a view of one): a `Map` of one entry costs about four times this. A second
 * namespace turns it into an {@link NsMap}.
 */
class OneNs implements NamespaceEntries {
  constructor(
    readonly ns: Namespace,
    public v: unknown,
  ) {}
  get size(): number {
    return 1;
  }
  get(ns: Namespace): unknown {
    return ns === this.ns ? this.v : undefined;
  }
  has(ns: Namespace): boolean {
    return ns === this.ns;
  }
  forEach(f: (value: unknown, ns: Namespace) => void): void {
    f(this.v, this.ns);
  }
}

/**
 * A key's entries of a namespaced table while it has several namespaces. Up to {@link NS_LIST_MAX}
 * of them are two small arrays searched in order; beyond, a `Map`. Entries keep their insertion
 * order either way (a snapshot's order, as a `Map`'s).
 *
 * NOTE: a key of a sliding window holds a few namespaces at a time (q5: five slices), which come
 * and go as windows fire. A `Map` of them cost a hash table allocated each time a key went from
 * one namespace to two (and again as it grew), promoted to the old space as windows live for
 * seconds, and a hash lookup per access; a scan of a few small integers or strings costs less.
 * Namespaces are compared with `===` (a `Map`'s SameValueZero but for NaN, which no namespace is).
 */
export class NsMap implements NamespaceEntries {
  private ns: Namespace[] = [];
  private vs: unknown[] = [];
  /** The entries once there are more than {@link NS_LIST_MAX} (the arrays are then empty). */
  private map: Map<Namespace, unknown> | undefined = undefined;

  get size(): number {
    return this.map === undefined ? this.ns.length : this.map.size;
  }
  private indexOf(ns: Namespace): number {
    const a = this.ns;
    for (let i = 0; i < a.length; i++) if (a[i] === ns) return i;
    return -1;
  }
  get(ns: Namespace): unknown {
    if (this.map !== undefined) return this.map.get(ns);
    const i = this.indexOf(ns);
    return i < 0 ? undefined : this.vs[i];
  }
  has(ns: Namespace): boolean {
    return this.map !== undefined ? this.map.has(ns) : this.indexOf(ns) >= 0;
  }
  set(ns: Namespace, v: unknown): this {
    if (this.map !== undefined) {
      this.map.set(ns, v);
      return this;
    }
    const i = this.indexOf(ns);
    if (i >= 0) this.vs[i] = v;
    else if (this.ns.length < NS_LIST_MAX) {
      this.ns.push(ns);
      this.vs.push(v);
    } else {
      const map = new Map<Namespace, unknown>();
      for (let j = 0; j < this.ns.length; j++) map.set(this.ns[j]!, this.vs[j]);
      map.set(ns, v);
      this.map = map;
      this.ns = [];
      this.vs = [];
    }
    return this;
  }
  delete(ns: Namespace): boolean {
    if (this.map !== undefined) return this.map.delete(ns);
    const i = this.indexOf(ns);
    if (i < 0) return false;
    this.ns.splice(i, 1);
    this.vs.splice(i, 1);
    return true;
  }
  forEach(f: (value: unknown, ns: Namespace) => void): void {
    if (this.map !== undefined) {
      this.map.forEach(f);
      return;
    }
    const ns = this.ns;
    const vs = this.vs;
    for (let i = 0; i < ns.length; i++) f(vs[i], ns[i]!);
  }
}

/** Namespaces a key keeps in {@link NsMap}'s arrays before they become a `Map`. */
const NS_LIST_MAX = 8;

/** A key's entries in a namespaced table: one namespace, or an {@link NsMap} of several. */
export type NsEntries = OneNs | NsMap;

function nsGet(e: NsEntries, ns: Namespace): unknown {
  if (e instanceof OneNs) return e.ns === ns ? e.v : undefined;
  return e.get(ns);
}

function nsSize(e: NsEntries): number {
  return e instanceof OneNs ? 1 : e.size;
}

/** Calls `f(value, namespace)` on each entry, as `Map.forEach` does. */
export function nsForEach(e: NsEntries, f: (v: unknown, ns: Namespace) => void): void {
  if (e instanceof OneNs) f(e.v, e.ns);
  else e.forEach(f);
}

/** Sets the entry of namespace `ns` of key `mk` in `g`, whose entries are `e` (undefined: none). */
function nsSet(g: EntryStore, mk: MapKey, e: NsEntries | undefined, ns: Namespace, v: unknown): void {
  if (e === undefined) g.set(mk, new OneNs(ns, v));
  else if (!(e instanceof OneNs)) e.set(ns, v);
  else if (e.ns === ns) e.v = v;
  else g.set(mk, new NsMap().set(e.ns, e.v).set(ns, v));
}

/**
 * A key's entries from `n` flat pairs `[namespace, value, ...]` of `flat` from `at` (a snapshot's
 * or a stored value's), each value passed through `value`.
 */
export function nsFromFlat(
  flat: readonly unknown[],
  at: number,
  n: number,
  value: (v: unknown) => unknown,
): NsEntries {
  if (n === 1) return new OneNs(flat[at] as Namespace, value(flat[at + 1]));
  const inner = new NsMap();
  for (let j = 0; j < n; j++) inner.set(flat[at + 2 * j] as Namespace, value(flat[at + 1 + 2 * j]));
  return inner;
}

/** Deletes the entry of namespace `ns` of key `mk`, and the key once it has none. */
function nsDelete(g: EntryStore, mk: MapKey, e: NsEntries, ns: Namespace): void {
  if (e instanceof OneNs) {
    if (e.ns === ns) g.delete(mk);
    return;
  }
  e.delete(ns);
  if (e.size === 0) g.delete(mk);
}

/** Raised when a key does not belong to the key groups of this backend. */
export class KeyGroupMismatchError extends StateError {
  constructor(message: string) {
    super(message);
    this.name = 'KeyGroupMismatchError';
  }
}
registerErrorClass('KeyGroupMismatchError', KeyGroupMismatchError);

/**
 * Where the state handles read and write the entries of a table in the current key group: a `Map`
 * on the heap, a view of the cache and LMDB in {@link LmdbKeyedStateBackend}. Handles only ever
 * pass the current key (`backend.mapKey`).
 */
export interface EntryStore {
  get(key: MapKey): unknown;
  set(key: MapKey, value: unknown): unknown;
  delete(key: MapKey): boolean;
}

/**
 * @internal The entries of one key group of a namespaced heap table whose keys have one namespace,
 * in columns: slot `s` holds key `keys[s]`, its namespace and its value. The group's `Map` maps
 * such a key to its slot (a number), and a key with several namespaces to an {@link NsMap} (back to
 * a slot when it has one again). A removed slot takes the last one's entry, so the columns stay
 * dense.
 *
 * NOTE: columns (issue 16, a compact heap layout) rather than an object per key: a checkpoint
 * that writes a key group whole reads three arrays in order, not a `Map` walk that follows a
 * pointer per key to an object somewhere on the heap (a cache miss each: the walk of 1 M window
 * keys took most of a checkpoint's synchronous part); and 1 M keys are 1 M fewer objects for each
 * full garbage collection to mark.
 */
export class Slots {
  readonly keys: MapKey[] = [];
  readonly namespaces: Namespace[] = [];
  readonly values: unknown[] = [];
  /** Keys of the group with several namespaces (an {@link NsMap} in the group's `Map`). */
  multi = 0;

  /** Gives key `mk` a slot with one entry (its entry in `g` becomes the slot number). */
  add(g: Map<MapKey, unknown>, mk: MapKey, ns: Namespace, v: unknown): void {
    g.set(mk, this.keys.length);
    this.keys.push(mk);
    this.namespaces.push(ns);
    this.values.push(v);
  }

  /** Frees slot `s` (its key's entry in `g` is the caller's to change): the last slot moves in. */
  remove(g: Map<MapKey, unknown>, s: number): void {
    const last = this.keys.length - 1;
    if (s !== last) {
      const moved = this.keys[last]!;
      this.keys[s] = moved;
      this.namespaces[s] = this.namespaces[last]!;
      this.values[s] = this.values[last];
      g.set(moved, s);
    }
    this.keys.pop();
    this.namespaces.pop();
    this.values.pop();
  }
}

/** @internal one registered state: per key group, canonical key → value (or namespace → value). */
export class StateTable {
  readonly groups: (Map<MapKey, unknown> | undefined)[];
  /**
   * Per key group: the entries of keys with one namespace ({@link Slots}), for a namespaced table
   * of the heap backend; undefined otherwise (the LMDB backend keeps {@link NsEntries}).
   */
  readonly slots: (Slots | undefined)[] | undefined;
  /**
   * A value that is not a number, string or boolean was stored in this (non-namespaced) table
   * since it was created: its key groups are snapshotted in a checkpoint's synchronous part (see
   * `HeapKeyedStateBackend.snapshotWholeLater`). NOTE: a flag set on writes, not a scan of the
   * group's `Map` at each checkpoint (a walk of its own).
   */
  objects = false;
  constructor(
    readonly name: string,
    readonly kind: StateKind,
    readonly namespaced: boolean,
    size: number,
    /** Its number in this backend (registration order): the LMDB backend's keys use it. */
    readonly id: number,
    slotted = false,
  ) {
    this.groups = new Array(size).fill(undefined);
    this.slots = slotted && namespaced ? new Array(size).fill(undefined) : undefined;
  }

  /** The slots of key group `index` (by index in the range), created on demand. */
  slotsAt(index: number): Slots {
    const all = this.slots!;
    let slots = all[index];
    if (slots === undefined) all[index] = slots = new Slots();
    return slots;
  }
}

/** @internal Takes a namespaced table's entries key by key: {@link key}, then {@link entry} per namespace. */
export interface NamespacedSink {
  key(key: MapKey, n: number): void;
  entry(namespace: Namespace, value: unknown): void;
}

/** @internal A sink that appends to a snapshot's flat data (`key, count, ns, value, ...`). */
export class FlatSink implements NamespacedSink {
  constructor(readonly data: unknown[]) {}
  key(key: MapKey, n: number): void {
    this.data.push(key, n);
  }
  entry(namespace: Namespace, value: unknown): void {
    this.data.push(namespace, value);
  }
}

/**
 * @internal Gives `sink` the entries of key `k` of a namespaced table, whose entry is `e` (on the
 * heap a slot of `slots` or an {@link NsMap} of several namespaces; in the LMDB backend's cache
 * {@link NsEntries}), values in their snapshot form.
 */
export function sendKey(
  kind: StateKind,
  k: MapKey,
  e: unknown,
  slots: Slots | undefined,
  sink: NamespacedSink,
): void {
  if (typeof e === 'number') {
    sink.key(k, 1);
    sink.entry(slots!.namespaces[e]!, snapshotValue(kind, slots!.values[e]));
    return;
  }
  const inner = e as NsEntries;
  sink.key(k, nsSize(inner));
  nsForEach(inner, (v, ns) => {
    sink.entry(ns, snapshotValue(kind, v));
  });
}

/**
 * Gives `sink` every entry of a heap namespaced table's key group: the keys with one namespace
 * first (in slot order), then the others (in the group's order). The one order of every snapshot
 * of such a group, flat or in columns.
 */
function sendGroup(
  kind: StateKind,
  group: Map<MapKey, unknown>,
  slots: Slots | undefined,
  sink: NamespacedSink,
): void {
  if (slots !== undefined)
    for (let s = 0; s < slots.keys.length; s++) sendKey(kind, slots.keys[s]!, s, slots, sink);
  if (slots !== undefined && slots.multi === 0) return;
  group.forEach((e, k) => {
    if (typeof e !== 'number') sendKey(kind, k, e, slots, sink);
  });
}

/**
 * The heap backend for one subtask of one keyed operator. The runtime sets the current key before
 * each record or timer; state handles read and write the entry of that key.
 */
export class HeapKeyedStateBackend implements KeyedStateBackend {
  /** Which backend this is. */
  readonly kind: 'heap' | 'lmdb' = 'heap';
  readonly maxParallelism: number;
  readonly keyGroupRange: KeyGroupRange;
  readonly now: () => number;
  readonly owner: string;
  /** One flag per key group of the range: written since {@link clearDirty}. */
  readonly dirty: Uint8Array;
  /**
   * Per key group of the range: canonical keys written since the group's last snapshot (for
   * incremental checkpoints that write only those keys), in the order written and possibly more
   * than once; {@link changedKeysOf} removes the repeats. Undefined: none, or not tracked.
   *
   * NOTE: an array, not a `Set`: a record's write appends its key, and the repeats are removed
   * when the log reaches a quarter of the group's keys (where a group may be written whole, see
   * {@link worthWritingWhole}), then whenever it doubles. A `Set` cost a hash insertion (and its
   * rehashing) per changed key: on the checkpoint benchmark, where half the keys change every
   * second, 250 ms against 160 ms over a 6-second run (a loop of the same writes, alone).
   */
  private readonly changedLog: (MapKey[] | undefined)[];
  /** Per key group: the length of its {@link changedLog} at which its repeats are removed next. */
  private readonly dedupAt: Uint32Array;
  /** Per key group: the whole group must be written next time (restored, or a write was lost). */
  readonly whole: Uint8Array;

  /** @internal the registered states, by name. */
  protected readonly tables = new Map<string, StateTable>();
  private readonly handles = new Map<string, unknown>();
  private key: Key | undefined = undefined;
  /** Canonical form of the current key. */
  mapKey: MapKey = '';
  /** Current key group minus the range start. */
  groupIndex = -1;

  constructor(options: HeapKeyedStateBackendOptions) {
    this.maxParallelism = options.maxParallelism;
    this.keyGroupRange = options.keyGroupRange;
    this.now = options.now;
    this.owner = options.owner;
    this.dirty = new Uint8Array(this.keyGroupRange.size);
    this.changedLog = new Array(this.keyGroupRange.size).fill(undefined);
    this.dedupAt = new Uint32Array(this.keyGroupRange.size).fill(DEDUP_FIRST);
    this.whole = new Uint8Array(this.keyGroupRange.size);
  }

  /** Marks the current key changed (its key group dirty). */
  touch(): void {
    const i = this.groupIndex;
    // NOTE: every write touches before it changes anything (keep it so): a key group whose
    // checkpoint snapshot is still to be taken (see snapshotWholeLater) is taken first, as it was.
    if (this.laterCount !== 0 && this.later![i] !== undefined) this.takeLater(i);
    const k = this.mapKey;
    // NOTE: a record usually writes several times under one key: remember the last one.
    if (k === this.lastTouched && i === this.lastTouchedGroup) return;
    this.dirty[i] = 1;
    if (this.whole[i] === 1) return;
    let log = this.changedLog[i];
    if (log === undefined) {
      this.changedLog[i] = log = [];
      this.dedupAt[i] = this.nextDedup(i, 0);
    }
    log.push(k);
    this.lastTouched = k;
    this.lastTouchedGroup = i;
    if (log.length >= this.dedupAt[i]!) {
      // Once enough of a group's keys changed, it is written whole: stop tracking its keys.
      const distinct = this.dedup(i, log);
      if (worthWritingWhole(distinct.length, this.keysInGroup(i))) this.touchWhole(i);
    }
  }

  /** The key group's log without repeats (kept as its log), and when to remove them next. */
  private dedup(index: number, log: MapKey[]): MapKey[] {
    const distinct = log.length === 1 ? log : [...new Set(log)];
    this.changedLog[index] = distinct;
    this.dedupAt[index] = this.nextDedup(index, distinct.length);
    return distinct;
  }

  /** When to remove the repeats of a log of `distinct` keys: once it may be worth writing whole. */
  private nextDedup(index: number, distinct: number): number {
    return Math.max(DEDUP_FIRST, 2 * distinct, (this.keysInGroup(index) >>> 2) + 1);
  }

  /**
   * The canonical keys of key group `index` (minus the range start) written since its last
   * snapshot, each once; undefined when none were, or when they are not tracked (the group is
   * written whole).
   */
  changedKeysOf(index: number): readonly MapKey[] | undefined {
    const log = this.changedLog[index];
    return log === undefined ? undefined : this.dedup(index, log);
  }
  private lastTouched: MapKey | undefined = undefined;
  private lastTouchedGroup = -1;

  /** Marks a key group to be written whole next time. */
  touchWhole(index: number): void {
    if (index === this.lastTouchedGroup) this.lastTouchedGroup = -1;
    this.dirty[index] = 1;
    this.whole[index] = 1;
    this.changedLog[index] = undefined;
    this.dedupAt[index] = DEDUP_FIRST;
  }

  /** Clears the change tracking of a key group (after a snapshot took it). */
  markClean(index: number): void {
    if (index === this.lastTouchedGroup) this.lastTouchedGroup = -1;
    this.dirty[index] = 0;
    this.whole[index] = 0;
    this.changedLog[index] = undefined;
    this.dedupAt[index] = DEDUP_FIRST;
  }

  /** Entries (keys) of the largest table in a key group: what a whole snapshot would write. */
  keysInGroup(index: number): number {
    if (this.pendingCount !== 0 && this.pending![index] === 1) this.installPending(index);
    let n = 0;
    for (const table of this.tables.values()) n = Math.max(n, table.groups[index]?.size ?? 0);
    return n;
  }

  /** Sets the key that state handles refer to. */
  setCurrentKey(key: Key): void {
    const group = keyGroupFor(key, this.maxParallelism);
    const index = group - this.keyGroupRange.start;
    if (index < 0 || index >= this.dirty.length) {
      if (!isKey(key))
        throw new InvalidRecordError(
          `${this.owner}: ${describeValue(key)} is not a valid key (use strings, numbers, bigints, booleans or arrays of them)`,
        );
      throw new KeyGroupMismatchError(
        `${this.owner}: key ${describeValue(key)} is in key group ${group}, which this subtask (key groups ${this.keyGroupRange}) does not own; is the key selector deterministic?`,
      );
    }
    if (this.pendingCount !== 0 && this.pending![index] === 1) this.installPending(index);
    this.key = key;
    this.groupIndex = index;
    this.mapKey = canonicalKey(key);
  }

  /** Sets the current key when its key group is already known (timers, restore). */
  setCurrentKeyInGroup(key: Key, keyGroup: number, mapKey: MapKey = canonicalKey(key)): void {
    const index = keyGroup - this.keyGroupRange.start;
    if (this.pendingCount !== 0 && this.pending![index] === 1) this.installPending(index);
    this.key = key;
    this.groupIndex = index;
    this.mapKey = mapKey;
  }

  /** The current key; throws when none is set. */
  getCurrentKey(): Key {
    if (this.key === undefined)
      throw new StateError(
        `${this.owner}: no current key (keyed state is only accessible while processing a keyed record or timer)`,
      );
    return this.key;
  }

  /** The current key group. */
  get currentKeyGroup(): number {
    return this.groupIndex + this.keyGroupRange.start;
  }

  /** Registered state names. */
  stateNames(): string[] {
    return [...this.tables.keys()];
  }

  /** Whether state `name` is registered with namespaces (per window), or `undefined` if it is not registered. */
  isNamespaced(name: string): boolean | undefined {
    return this.tables.get(name)?.namespaced;
  }

  getState<T>(d: ValueStateDescriptor<T>): ValueState<T>;
  getState<T>(d: ListStateDescriptor<T>): ListState<T>;
  getState<UK extends Key, UV>(d: MapStateDescriptor<UK, UV>): MapState<UK, UV>;
  getState<T>(d: ReducingStateDescriptor<T>): ReducingState<T>;
  getState<IN, ACC, OUT>(d: AggregatingStateDescriptor<IN, ACC, OUT>): AggregatingState<IN, OUT>;
  getState(d: StateDescriptor): unknown;
  /** The state a descriptor describes, in the default namespace. */
  getState(d: StateDescriptor): unknown {
    return this.handle(d, false);
  }

  /**
   * The state a descriptor describes, with a settable namespace (window operators keep per-window
   * state this way). Call `setNamespace` before each use.
   */
  getNamespacedState<S>(d: StateDescriptor): S & { setNamespace(ns: Namespace): void } {
    return this.handle(d, true) as S & { setNamespace(ns: Namespace): void };
  }

  private handle(d: StateDescriptor, namespaced: boolean): unknown {
    const id = namespaced ? `ns:${d.name}` : d.name;
    const existing = this.handles.get(id);
    if (existing !== undefined) {
      const table = this.tables.get(d.name)!;
      if (table.kind !== d.kind) throw this.kindMismatch(d, table.kind);
      return existing;
    }
    let table = this.tables.get(d.name);
    if (table === undefined) {
      table = new StateTable(
        d.name,
        d.kind,
        namespaced,
        this.keyGroupRange.size,
        this.tables.size,
        this.kind === 'heap',
      );
      this.tables.set(d.name, table);
    } else if (table.kind !== d.kind) {
      throw this.kindMismatch(d, table.kind);
    } else if (table.namespaced !== namespaced) {
      throw new StateError(
        `${this.owner}: state '${d.name}' is already registered ${table.namespaced ? 'with' : 'without'} namespaces`,
      );
    }
    const h = createHandle(this, table, d);
    this.handles.set(id, h);
    return h;
  }

  private kindMismatch(d: StateDescriptor, kind: StateKind): Error {
    return new StateError(
      `${this.owner}: state '${d.name}' is already registered as ${kind} state, not ${d.kind} state`,
    );
  }

  /**
   * Merges the entries of the current key in namespaces `sources` of state `d` into namespace
   * `target`, and removes the source entries (Flink's `InternalMergingState.mergeNamespaces`, used
   * by merging windows). Reducing state reduces (`reduce(target, reduce(s1, s2, ...))`),
   * aggregating state merges accumulators with `AggregateFunction.merge`, list state appends the
   * source lists, in order, to the target list. Value and map state cannot be merged.
   */
  mergeNamespaces(d: StateDescriptor, target: Namespace, sources: readonly Namespace[]): void {
    if (d.kind === 'value' || d.kind === 'map')
      throw new StateError(
        `${this.owner}: state '${d.name}' is ${d.kind} state, which cannot be merged; only reducing, aggregating and list state can`,
      );
    if (
      d.kind === 'aggregating' &&
      typeof (d as AggregatingStateDescriptor<unknown, unknown, unknown>).aggregate.merge !== 'function'
    )
      throw new StateError(
        `${this.owner}: aggregating state '${d.name}' cannot be merged: its AggregateFunction has no merge() (merging windows, such as session windows, need one)`,
      );
    if (sources.length === 0) return;
    (this.handle(d, true) as MergingHandle).mergeNamespaces(target, sources);
  }

  /** Every key that has an entry in the given state (in any namespace). */
  *keys(stateName: string): IterableIterator<Key> {
    this.installAllPending();
    const table = this.tables.get(stateName);
    if (table === undefined) return;
    for (const group of table.groups)
      if (group !== undefined) for (const k of group.keys()) yield decodeKey(k);
  }

  /** Every key with state, with its key group, over all states (deduplicated). */
  *allKeys(): IterableIterator<[Key, number]> {
    this.installAllPending();
    for (let i = 0; i < this.keyGroupRange.size; i++) {
      const seen = new Set<MapKey>();
      for (const table of this.tables.values()) {
        const group = table.groups[i];
        if (group === undefined) continue;
        for (const k of group.keys()) {
          if (seen.has(k)) continue;
          seen.add(k);
          yield [decodeKey(k), i + this.keyGroupRange.start];
        }
      }
    }
  }

  /** Number of entries (keys × namespaces) of a state, for tests and metrics. */
  size(stateName?: string): number {
    this.installAllPending();
    let n = 0;
    for (const table of this.tables.values()) {
      if (stateName !== undefined && table.name !== stateName) continue;
      for (const group of table.groups) {
        if (group === undefined) continue;
        if (!table.namespaced) n += group.size;
        else
          for (const inner of group.values()) n += typeof inner === 'number' ? 1 : nsSize(inner as NsEntries);
      }
    }
    return n;
  }

  /**
   * The state of one key group, as plain data (empty tables are left out). Lists are copied and
   * maps turned into entry arrays, so later writes do not leak into the snapshot.
   */
  snapshotKeyGroup(keyGroup: number): Tables {
    return this.eachTableIn(keyGroup, (table, group, index) => {
      const data: unknown[] = [];
      // NOTE: forEach, not for-of: no iterator and no [key, value] pair per entry (a snapshot of a
      // large group walks every entry, on the task's thread).
      if (!table.namespaced) group.forEach(entryPusher(data, table.kind));
      else sendGroup(table.kind, group, table.slots?.[index], new FlatSink(data));
      return { kind: table.kind, namespaced: table.namespaced, data };
    });
  }

  /**
   * What `each` makes of every table with entries in key group `keyGroup` (installed first if it
   * is restored but not yet installed), by state name; `index` is the group's in the range.
   */
  private eachTableIn<T>(
    keyGroup: number,
    each: (table: StateTable, group: Map<MapKey, unknown>, index: number) => T,
  ): Record<string, T> {
    const index = keyGroup - this.keyGroupRange.start;
    if (this.pendingCount !== 0 && this.pending![index] === 1) this.installPending(index);
    const out: Record<string, T> = {};
    for (const table of this.tables.values()) {
      const group = table.groups[index];
      if (group !== undefined && group.size !== 0) out[table.name] = each(table, group, index);
    }
    return out;
  }

  /**
   * {@link snapshotKeyGroup} for a checkpoint: the same entries in the same order, split into the
   * columns the checkpoint writes while walking them (no flat array split again by the encoder):
   * each column typed while it is walked (see `TableColumnsBuilder`). 1 M window entries (in
   * slots) walk and encode in 40-44 ms, against 64-69 ms with plain arrays typed afterwards and
   * 140-154 ms through flat arrays (`bench/snapshot-encoding.ts`).
   */
  snapshotKeyGroupForCheckpoint(keyGroup: number): EncodableTables {
    return this.eachTableIn(keyGroup, (table, group, index) => {
      const kind = table.kind;
      const b = new TableColumnsBuilder(kind, table.namespaced, group.size);
      // NOTE: forEach, not for-of (see snapshotKeyGroup).
      if (!table.namespaced)
        group.forEach((v, k) => {
          b.plain(k, snapshotValue(kind, v));
        });
      else sendGroup(kind, group, table.slots?.[index], b);
      return b.build();
    });
  }

  /**
   * The state of some keys (canonical forms) of one key group, in the format of
   * {@link snapshotKeyGroup}: what an incremental checkpoint writes for the keys that changed.
   */
  snapshotKeys(keyGroup: number, keys: readonly MapKey[]): Tables {
    const index = keyGroup - this.keyGroupRange.start;
    const out: Tables = {};
    for (const table of this.tables.values()) {
      const group = table.groups[index];
      if (group === undefined || group.size === 0) continue;
      const data: unknown[] = [];
      const entry = entryPusher(data, table.kind);
      const slots = table.slots?.[index];
      const sink = new FlatSink(data);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const v = group.get(k);
        if (v === undefined) continue;
        if (!table.namespaced) entry(v, k);
        else sendKey(table.kind, k, v, slots, sink);
      }
      if (data.length > 0) out[table.name] = { kind: table.kind, namespaced: table.namespaced, data };
    }
    return out;
  }

  /** The state tables of every key group of this backend that holds state. */
  snapshot(): Map<number, Tables> {
    const groups = new Map<number, Tables>();
    for (let g = this.keyGroupRange.start; g <= this.keyGroupRange.end; g++) {
      const s = this.snapshotKeyGroup(g);
      if (Object.keys(s).length > 0) groups.set(g, s);
    }
    return groups;
  }

  /**
   * The heap backend reads no transaction later: a checkpoint takes its whole key groups with
   * {@link snapshotWholeLater} (copy-on-write).
   */
  readonly readsLater: boolean = false;

  /**
   * Per key group (by index in the range): the snapshot of a checkpoint still to be taken of it
   * (see {@link snapshotWholeLater}); `laterCount` of them are set.
   */
  private later: ((() => void) | undefined)[] | undefined;
  private laterCount = 0;

  /**
   * Copy-on-write snapshots of whole key groups (Flink's heap backend takes its snapshots
   * asynchronously, copying on write, too): `take(g)` snapshots key group `g`, now for a group
   * this cannot defer, else later: before the first write to the group, or in a slice of about
   * 10 ms of an event-loop turn of its own, while records are processed meanwhile. Returns undefined
   * when every group was taken now, else a promise that resolves once all were (and rejects with
   * the first error of a `take`).
   *
   * A group is deferred only when a write is the only way to change what its snapshot reads: every
   * table with entries in it is a value, reducing or aggregating state whose values are numbers,
   * strings or booleans (namespaced: kept in slots, one namespace per key, and scanned; not
   * namespaced: none other ever stored, see `StateTable.objects`). An object could be
   * changed in place by the job before the snapshot reads it (a user function mutating its
   * accumulator), and lists and maps are; those groups are taken now. NOTE: the cost moves out of
   * the synchronous part; it is the same walk (the heap has no shadow copy to read instead: a copy
   * of the slots' three arrays of 1 M keys takes 21-47 ms, as long as walking them).
   */
  snapshotWholeLater(
    keyGroups: readonly number[],
    take: (keyGroup: number) => void,
  ): Promise<void> | undefined {
    const deferred: number[] = [];
    let failure: unknown;
    for (const g of keyGroups) {
      const index = g - this.keyGroupRange.start;
      if (this.laterCount !== 0 && this.later![index] !== undefined) this.takeLater(index);
      if (!this.canTakeLater(index)) {
        take(g);
        continue;
      }
      (this.later ??= new Array(this.keyGroupRange.size).fill(undefined))[index] = () => {
        try {
          take(g);
        } catch (e) {
          failure ??= e;
        }
      };
      this.laterCount++;
      deferred.push(index);
    }
    if (deferred.length === 0) return undefined;
    const takeAll = async (): Promise<void> => {
      // NOTE: not one group in the synchronous part: the first slice comes in a turn of its own.
      let slice = Number.NEGATIVE_INFINITY;
      for (const index of deferred) {
        if (performance.now() - slice > LATER_SLICE_MS) {
          await nextTurn();
          slice = performance.now();
        }
        const later = this.later;
        if (later === undefined) throw this.closedDuringSnapshot();
        // NOTE: already taken by a write when undefined.
        if (later[index] !== undefined) this.takeLater(index);
      }
      if (failure !== undefined) throw failure;
    };
    const taking = takeAll();
    taking.catch(() => {}); // see OperatorRuntime.snapshotIncremental
    return taking;
  }

  /** The error of a snapshot still under way when the backend is disposed (its operator closed). */
  protected closedDuringSnapshot(): StateError {
    return new StateError(`${this.owner}: the state backend was closed during a snapshot`);
  }

  /** Takes the deferred snapshot of key group `index` now (see {@link snapshotWholeLater}). */
  private takeLater(index: number): void {
    const take = this.later![index]!;
    this.later![index] = undefined;
    this.laterCount--;
    // NOTE: the current key is kept: a write is taking it, in the middle of its record.
    this.keepingCurrentKey(take);
  }

  /** Runs `f`, then sets the current key back to what it was. */
  private keepingCurrentKey(f: () => void): void {
    const { key, groupIndex, mapKey } = this;
    f();
    this.key = key;
    this.groupIndex = groupIndex;
    this.mapKey = mapKey;
  }

  /** Whether a write is the only way to change a snapshot of key group `index` (see snapshotWholeLater). */
  private canTakeLater(index: number): boolean {
    if (this.pendingCount !== 0 && this.pending![index] === 1) return false;
    for (const table of this.tables.values()) {
      const group = table.groups[index];
      if (group === undefined || group.size === 0) continue;
      if (table.kind === 'list' || table.kind === 'map') return false;
      if (!table.namespaced) {
        if (table.objects) return false;
        continue;
      }
      const slots = table.slots?.[index];
      if (slots === undefined || slots.multi !== 0) return false;
      const values = slots.values;
      for (let s = 0; s < values.length; s++) if (!isPlain(values[s])) return false;
    }
    return true;
  }

  /** See {@link KeyedStateBackend.snapshotKeyGroupsLater}: here at once, from the tables. */
  snapshotKeyGroupsLater(
    parts: readonly SnapshotPart[],
    each: (keyGroup: number, tables: Tables) => void,
  ): Promise<void> | undefined {
    for (const p of parts)
      each(
        p.keyGroup,
        p.keys === undefined ? this.snapshotKeyGroup(p.keyGroup) : this.snapshotKeys(p.keyGroup, p.keys),
      );
    return undefined;
  }

  /**
   * Loads key groups (of one or more earlier subtasks, taken with this maxParallelism). Key groups
   * outside this backend's range are ignored, so every subtask can be given the whole snapshot.
   */
  restore(groups: Iterable<readonly [number, Tables]>): void {
    for (const [g, data] of groups) if (this.keyGroupRange.contains(g)) this.restoreKeyGroup(g, data);
  }

  /** Loads one key group (replacing what it held). */
  restoreKeyGroup(keyGroup: number, data: Tables): void {
    const index = keyGroup - this.keyGroupRange.start;
    if (this.laterCount !== 0 && this.later![index] !== undefined) this.takeLater(index);
    if (this.pendingCount !== 0 && this.pending![index] === 1) {
      this.pending![index] = 0;
      this.pendingCount--;
    }
    for (const [name, t] of Object.entries(data)) {
      const table = this.restoredTable(name, t);
      const group = new Map<MapKey, unknown>();
      const data = t.data;
      let slots: Slots | undefined;
      if (table.slots !== undefined) table.slots[index] = slots = new Slots();
      if (!t.namespaced)
        for (let i = 0; i < data.length; i += 2) {
          const v = restoreValue(t.kind, data[i + 1]);
          if (!isPlain(v)) table.objects = true;
          group.set(data[i] as MapKey, v);
        }
      else
        for (let i = 0; i < data.length; ) {
          const k = data[i] as MapKey;
          const n = data[i + 1] as number;
          if (n === 1 && slots !== undefined)
            slots.add(group, k, data[i + 2] as Namespace, restoreValue(t.kind, data[i + 3]));
          else {
            group.set(
              k,
              nsFromFlat(data, i + 2, n, (v) => restoreValue(t.kind, v)),
            );
            if (slots !== undefined) slots.multi++;
          }
          i += 2 + 2 * n;
        }
      table.groups[index] = group;
    }
    this.touchWhole(index);
  }

  /** @internal the table a restored state goes to (registered here if it is not yet). */
  protected restoredTable(name: string, t: Tables[string]): StateTable {
    let table = this.tables.get(name);
    if (table === undefined) {
      table = new StateTable(
        name,
        t.kind,
        t.namespaced,
        this.keyGroupRange.size,
        this.tables.size,
        this.kind === 'heap',
      );
      this.tables.set(name, table);
    } else if (table.kind !== t.kind) {
      throw new StateError(
        `${this.owner}: restored state '${name}' is ${t.kind} state, but the job registers it as ${table.kind} state`,
      );
    }
    return table;
  }

  // ---- restored key groups installed when first needed ----

  /** Per key group of the range: 1 while restored but not installed yet (see {@link deferRestore}). */
  private pending: Uint8Array | undefined = undefined;
  private pendingCount = 0;
  private install: ((keyGroup: number) => void) | undefined = undefined;

  /**
   * Restores key groups later, each when first needed: `install(g)` must call
   * {@link restoreKeyGroup} for `g` (and restore what else the group holds, such as its timers).
   * A group is installed before a key of it is set (a record, a timer, a state query), before its
   * state is snapshotted, and before anything lists keys or counts entries; the owner installs
   * groups whose timers come due ({@link installPending}) and the rest with
   * {@link installAllPending} before a checkpoint. The tables are declared now, with the kinds the
   * snapshot gives, so that a job registering a state of another kind fails when it registers it,
   * as after an eager restore.
   */
  deferRestore(groups: Iterable<[number, Tables]>, install: (keyGroup: number) => void): void {
    const pending = (this.pending ??= new Uint8Array(this.keyGroupRange.size));
    for (const [g, data] of groups) {
      if (!this.keyGroupRange.contains(g)) continue;
      for (const [name, t] of Object.entries(data)) this.restoredTable(name, t);
      const index = g - this.keyGroupRange.start;
      if (pending[index] === 1) continue;
      pending[index] = 1;
      this.pendingCount++;
    }
    this.install = install;
  }

  /** Whether key group `keyGroup` is restored but not installed yet. */
  isPending(keyGroup: number): boolean {
    return this.pendingCount !== 0 && this.pending![keyGroup - this.keyGroupRange.start] === 1;
  }

  /** Key groups restored but not installed yet. */
  get pendingGroups(): number {
    return this.pendingCount;
  }

  /** Installs a pending key group (by index in the range) now. */
  installPending(index: number): void {
    if (this.pending?.[index] !== 1) return;
    this.pending[index] = 0;
    this.pendingCount--;
    // NOTE: the current key is kept: installing runs in the middle of setting another one.
    this.keepingCurrentKey(() => this.install!(index + this.keyGroupRange.start));
  }

  /** Installs every pending key group, in key-group order. */
  installAllPending(): void {
    if (this.pendingCount === 0) return;
    for (let i = 0; i < this.keyGroupRange.size && this.pendingCount !== 0; i++) this.installPending(i);
  }

  /** Marks every key group clean (after a snapshot). */
  clearDirty(): void {
    this.lastTouchedGroup = -1;
    this.dirty.fill(0);
    this.whole.fill(0);
    this.changedLog.fill(undefined);
    this.dedupAt.fill(DEDUP_FIRST);
  }

  /**
   * Drops all state. A checkpoint's snapshots still to be taken are abandoned (their promise
   * rejects): the task is gone, so is the checkpoint (a finished job's last checkpoint completed
   * before its operators close).
   */
  dispose(): void {
    this.later = undefined;
    this.laterCount = 0;
    this.pending = undefined;
    this.pendingCount = 0;
    this.tables.clear();
    this.handles.clear();
  }

  // ---- used by state handles ----

  /** @internal the current key's group map of a table, created on demand. */
  group(table: StateTable, create: boolean): EntryStore | undefined {
    const i = this.groupIndex;
    if (i < 0) this.getCurrentKey();
    let g = table.groups[i];
    if (g === undefined && create) table.groups[i] = g = new Map();
    if (create) this.touch();
    return g;
  }
}

/** A `forEach` callback that appends `key, value` to a snapshot's flat data. */
export function entryPusher(data: unknown[], kind: StateKind): (v: unknown, k: unknown) => void {
  return (v, k) => {
    data.push(k, snapshotValue(kind, v));
  };
}

/** @internal a stored value in its snapshot form (maps as entry arrays, lists copied). */
export function snapshotValue(kind: StateKind, v: unknown): unknown {
  // NOTE: maps are stored as entry arrays; lists are copied so later appends do not leak in.
  if (kind === 'map') return [...(v as Map<MapKey, unknown>)];
  if (kind === 'list') return (v as unknown[]).slice();
  return v;
}

/** @internal a value in its snapshot form back in its stored form. */
export function restoreValue(kind: StateKind, v: unknown): unknown {
  if (kind === 'map') return new Map(v as [MapKey, unknown][]);
  if (kind === 'list') return (v as unknown[]).slice();
  return v;
}

/** Reads and writes one table at the backend's current key (and namespace). */
abstract class BaseHandle {
  ns: Namespace | undefined = undefined;
  readonly ttl: StateTtlConfig | undefined;
  readonly refreshOnRead: boolean;
  readonly returnExpired: boolean;
  /**
   * Namespaced state without TTL: an entry is combined ({@link combineNamespaced}) or taken
   * ({@link takeRaw}) with one lookup of the key's entries.
   */
  protected readonly oneLookup: boolean;

  constructor(
    readonly backend: HeapKeyedStateBackend,
    readonly table: StateTable,
    d: StateDescriptor,
  ) {
    this.ttl = d.ttl;
    this.oneLookup = d.ttl === undefined && table.namespaced;
    this.refreshOnRead = d.ttl?.updateType === 'OnReadAndWrite';
    this.returnExpired = d.ttl?.stateVisibility === 'ReturnExpiredIfNotCleanedUp';
  }

  setNamespace(ns: Namespace): void {
    this.ns = ns;
  }

  /** The raw stored entry of the current key/namespace. */
  protected raw(): unknown {
    const g = this.backend.group(this.table, false);
    if (g === undefined) return undefined;
    const v = g.get(this.backend.mapKey);
    if (!this.table.namespaced || v === undefined) return v;
    if (typeof v === 'number') {
      const slots = this.table.slots![this.backend.groupIndex]!;
      return slots.namespaces[v] === this.nsKey() ? slots.values[v] : undefined;
    }
    return nsGet(v as NsEntries, this.nsKey());
  }

  protected setRaw(value: unknown): void {
    const g = this.backend.group(this.table, true)!;
    if (!this.table.namespaced) {
      if (!this.table.objects && !isPlain(value)) this.table.objects = true;
      g.set(this.backend.mapKey, value);
      return;
    }
    const mk = this.backend.mapKey;
    this.setNamespaced(g, mk, g.get(mk), this.nsKey(), value);
  }

  /** Sets the entry of namespace `ns` of key `mk`, whose entry in `g` is `e` (undefined: none). */
  private setNamespaced(g: EntryStore, mk: MapKey, e: unknown, ns: Namespace, v: unknown): void {
    if (this.table.slots === undefined) {
      nsSet(g, mk, e as NsEntries | undefined, ns, v);
      return;
    }
    const map = g as Map<MapKey, unknown>;
    const slots = this.table.slotsAt(this.backend.groupIndex);
    if (e === undefined) slots.add(map, mk, ns, v);
    else if (typeof e !== 'number') (e as NsMap).set(ns, v);
    else if (slots.namespaces[e] === ns) slots.values[e] = v;
    else {
      // A second namespace: the key's entries become an NsMap, its slot freed.
      const several = new NsMap().set(slots.namespaces[e]!, slots.values[e]).set(ns, v);
      slots.remove(map, e);
      map.set(mk, several);
      slots.multi++;
    }
  }

  protected deleteRaw(): void {
    const g = this.backend.group(this.table, false);
    if (g === undefined) return;
    this.backend.touch();
    if (!this.table.namespaced) {
      g.delete(this.backend.mapKey);
      return;
    }
    const mk = this.backend.mapKey;
    const inner = g.get(mk);
    if (inner === undefined) return;
    if (this.table.slots === undefined) {
      nsDelete(g, mk, inner as NsEntries, this.nsKey());
      return;
    }
    const slots = this.table.slotsAt(this.backend.groupIndex);
    const ns = this.nsKey();
    if (typeof inner === 'number') {
      if (slots.namespaces[inner] !== ns) return;
      slots.remove(g as Map<MapKey, unknown>, inner);
      g.delete(mk);
      return;
    }
    const several = inner as NsMap;
    if (!several.delete(ns) || several.size > 1) return;
    // NOTE: back to one namespace, the key takes a slot again: a key has an NsMap only while it
    // has several, so a snapshot's order (slots, then NsMaps) comes back the same from its restore.
    slots.multi--;
    several.forEach((v, n) => {
      slots.add(g as Map<MapKey, unknown>, mk, n, v);
    });
  }

  /**
   * @internal the current namespace's raw entry, removed: a read and then a clear, with one lookup
   * of the key's entries where the key has one namespace (a window's contents when it fires and is
   * cleaned up at once); undefined when there is none. Namespaced state without TTL.
   */
  protected takeRaw(): unknown {
    const backend = this.backend;
    const g = backend.group(this.table, false);
    if (g === undefined) return undefined;
    const mk = backend.mapKey;
    const inner = g.get(mk);
    if (inner === undefined) return undefined;
    if (typeof inner !== 'number') {
      // Several namespaces (or the LMDB backend's entries): read, then delete.
      const v = nsGet(inner as NsEntries, this.nsKey());
      if (v !== undefined) this.deleteRaw();
      return v;
    }
    const slots = this.table.slots![backend.groupIndex]!;
    if (slots.namespaces[inner] !== this.nsKey()) return undefined;
    const v = slots.values[inner];
    backend.touch();
    slots.remove(g as Map<MapKey, unknown>, inner);
    g.delete(mk);
    return v;
  }

  protected nsKey(): Namespace {
    if (this.ns === undefined)
      throw new StateError(
        `${this.backend.owner}: namespaced state '${this.table.name}' used without a namespace`,
      );
    return this.ns;
  }

  clear(): void {
    this.deleteRaw();
  }

  /**
   * @internal the current key's stored entries by namespace (namespaced state), or `undefined` if
   * it has none: one lookup for an operator that reads several namespaces of a key (sliced windows
   * read a window's slices). Read only; entries are wrapped when the state has a TTL.
   */
  namespacesOfCurrentKey(): NamespaceEntries | undefined {
    if (!this.table.namespaced) return undefined;
    const g = this.backend.group(this.table, false);
    if (g === undefined) return undefined;
    const e = g.get(this.backend.mapKey);
    if (typeof e !== 'number') return e as NsEntries | undefined;
    // NOTE: the entry as it is now (a slot may be given to another key once this one's is freed).
    const slots = this.table.slots![this.backend.groupIndex]!;
    return new OneNs(slots.namespaces[e]!, slots.values[e]);
  }

  /**
   * For namespaced state without TTL: replaces the current namespace's entry with
   * `next(current)` with one lookup of the key's namespaces (instead of a read, then a write).
   * Returns true when there was no entry.
   */
  protected combineNamespaced<V>(
    value: unknown,
    next: (value: unknown, current: V | undefined) => V,
  ): boolean {
    const backend = this.backend;
    const g = backend.group(this.table, true)!;
    const mk = backend.mapKey;
    const inner = g.get(mk);
    const ns = this.nsKey();
    if (typeof inner === 'number') {
      const slots = this.table.slots![backend.groupIndex]!;
      if (slots.namespaces[inner] === ns) {
        slots.values[inner] = next(value, slots.values[inner] as V);
        return false;
      }
      this.setNamespaced(g, mk, inner, ns, next(value, undefined));
      return true;
    }
    const current = (inner === undefined ? undefined : nsGet(inner as NsEntries, ns)) as V | undefined;
    this.setNamespaced(g, mk, inner, ns, next(value, current));
    return current === undefined;
  }

  // ---- TTL helpers: with TTL, a stored unit is { v, t } ----

  protected wrap<V>(v: V): unknown {
    return this.ttl === undefined ? v : ({ v, t: this.backend.now() } satisfies TtlValue<V>);
  }

  /** Unwraps a stored unit; returns `EXPIRED` when it must not be returned. */
  protected unwrap<V>(u: unknown): V | typeof EXPIRED {
    if (this.ttl === undefined) return u as V;
    const w = u as TtlValue<V>;
    const now = this.backend.now();
    if (w.t + this.ttl.ttlMs <= now && !this.returnExpired) return EXPIRED;
    if (this.refreshOnRead && w.t !== now) {
      // NOTE: a refreshed timestamp is a change: the next checkpoint (and the LMDB backend's
      // cache) must write it.
      this.backend.touch();
      w.t = now;
    }
    return w.v;
  }

  protected isExpired(u: unknown): boolean {
    return this.ttl !== undefined && (u as TtlValue<unknown>).t + this.ttl.ttlMs <= this.backend.now();
  }
}

const EXPIRED: unique symbol = Symbol('expired');

/** A handle whose entries can be merged across namespaces. */
interface MergingHandle {
  mergeNamespaces(target: Namespace, sources: readonly Namespace[]): void;
}

class HeapValueState<T> extends BaseHandle implements ValueState<T> {
  constructor(
    backend: HeapKeyedStateBackend,
    table: StateTable,
    private readonly d: ValueStateDescriptor<T>,
  ) {
    super(backend, table, d);
  }
  value(): T | undefined {
    const u = this.raw();
    if (u === undefined) return this.d.defaultValue;
    const v = this.unwrap<T>(u);
    if (v === EXPIRED) {
      this.deleteRaw();
      return this.d.defaultValue;
    }
    return v;
  }
  update(value: T | undefined): void {
    if (value === undefined) this.deleteRaw();
    else this.setRaw(this.wrap(value));
  }
}

class HeapReducingState<T> extends BaseHandle implements ReducingState<T> {
  constructor(
    backend: HeapKeyedStateBackend,
    table: StateTable,
    private readonly d: ReducingStateDescriptor<T>,
  ) {
    super(backend, table, d);
  }
  get(): T | undefined {
    const u = this.raw();
    if (u === undefined) return undefined;
    const v = this.unwrap<T>(u);
    if (v === EXPIRED) {
      this.deleteRaw();
      return undefined;
    }
    return v;
  }
  /** @internal what {@link get} returns, then cleared (see {@link BaseHandle.takeRaw}). */
  getAndClear(): T | undefined {
    if (this.oneLookup) return this.takeRaw() as T | undefined;
    const v = this.get();
    this.clear();
    return v;
  }
  add(value: T): void {
    this.addReportingNew(value);
  }
  private readonly combine = (value: unknown, current: T | undefined): T =>
    current === undefined ? (value as T) : this.d.reduce(current, value as T);
  /** @internal adds; true when the current key (and namespace) had no value before. */
  addReportingNew(value: T): boolean {
    if (this.oneLookup) return this.combineNamespaced(value, this.combine);
    const current = this.get();
    this.setRaw(this.wrap(current === undefined ? value : this.d.reduce(current, value)));
    return current === undefined;
  }
  /**
   * @internal combines a value reduced elsewhere (a partial result) into the current key and
   * namespace: the reduce function is associative, so this equals adding its elements one by one.
   * True when there was no value before.
   */
  mergePartialReportingNew(partial: T): boolean {
    return this.addReportingNew(partial);
  }
  /** @internal see {@link HeapKeyedStateBackend.mergeNamespaces}. */
  mergeNamespaces(target: Namespace, sources: readonly Namespace[]): void {
    const saved = this.ns;
    try {
      let merged: T | undefined;
      for (const source of sources) {
        this.ns = source;
        const v = this.get();
        if (v === undefined) continue;
        this.deleteRaw();
        merged = merged === undefined ? v : this.d.reduce(merged, v);
      }
      if (merged === undefined) return;
      this.ns = target;
      const current = this.get();
      this.setRaw(this.wrap(current === undefined ? merged : this.d.reduce(current, merged)));
    } finally {
      this.ns = saved;
    }
  }
}

class HeapAggregatingState<IN, ACC, OUT> extends BaseHandle implements AggregatingState<IN, OUT> {
  constructor(
    backend: HeapKeyedStateBackend,
    table: StateTable,
    private readonly d: AggregatingStateDescriptor<IN, ACC, OUT>,
  ) {
    super(backend, table, d);
  }
  private acc(): ACC | undefined {
    const u = this.raw();
    if (u === undefined) return undefined;
    const v = this.unwrap<ACC>(u);
    if (v === EXPIRED) {
      this.deleteRaw();
      return undefined;
    }
    return v;
  }
  get(): OUT | undefined {
    const acc = this.acc();
    return acc === undefined ? undefined : this.d.aggregate.getResult(acc);
  }
  /** @internal what {@link get} returns, then cleared (see {@link BaseHandle.takeRaw}). */
  getAndClear(): OUT | undefined {
    let acc: ACC | undefined;
    if (this.oneLookup) acc = this.takeRaw() as ACC | undefined;
    else {
      acc = this.acc();
      this.clear();
    }
    return acc === undefined ? undefined : this.d.aggregate.getResult(acc);
  }
  add(value: IN): void {
    this.addReportingNew(value);
  }
  private readonly combine = (value: unknown, acc: ACC | undefined): ACC =>
    this.d.aggregate.add(value as IN, acc === undefined ? this.d.aggregate.createAccumulator() : acc);
  /** @internal adds; true when the current key (and namespace) had no accumulator before. */
  addReportingNew(value: IN): boolean {
    if (this.oneLookup) return this.combineNamespaced(value, this.combine);
    const acc = this.acc();
    this.setRaw(this.wrap(this.d.aggregate.add(value, acc ?? this.d.aggregate.createAccumulator())));
    return acc === undefined;
  }
  private readonly mergeAcc = (partial: unknown, acc: ACC | undefined): ACC =>
    acc === undefined ? (partial as ACC) : this.d.aggregate.merge!(acc, partial as ACC);
  /**
   * @internal merges an accumulator built elsewhere (a partial result) into the current key and
   * namespace with the function's `merge(current, partial)`. True when there was none before.
   */
  mergePartialReportingNew(partial: ACC): boolean {
    if (this.d.aggregate.merge === undefined)
      throw new StateError(
        `${this.backend.owner}: aggregating state '${this.d.name}' cannot merge a partial result: its AggregateFunction has no merge()`,
      );
    if (this.oneLookup) return this.combineNamespaced(partial, this.mergeAcc);
    const acc = this.acc();
    this.setRaw(this.wrap(this.mergeAcc(partial, acc)));
    return acc === undefined;
  }
  /** @internal see {@link HeapKeyedStateBackend.mergeNamespaces}. */
  mergeNamespaces(target: Namespace, sources: readonly Namespace[]): void {
    const merge = this.d.aggregate.merge!.bind(this.d.aggregate);
    const saved = this.ns;
    try {
      let merged: ACC | undefined;
      for (const source of sources) {
        this.ns = source;
        const acc = this.acc();
        if (acc === undefined) continue;
        this.deleteRaw();
        merged = merged === undefined ? acc : merge(merged, acc);
      }
      if (merged === undefined) return;
      this.ns = target;
      const current = this.acc();
      this.setRaw(this.wrap(current === undefined ? merged : merge(current, merged)));
    } finally {
      this.ns = saved;
    }
  }
}

/** Appends to a stored list in place, or starts one (see {@link BaseHandle.combineNamespaced}). */
const append = (value: unknown, list: unknown[] | undefined): unknown[] => {
  if (list === undefined) return [value];
  list.push(value);
  return list;
};

class HeapListState<T> extends BaseHandle implements ListState<T> {
  get(): readonly T[] {
    const list = this.raw() as unknown[] | undefined;
    if (list === undefined) return [];
    if (this.ttl === undefined) return list as T[];
    const out: T[] = [];
    let expired = 0;
    for (const u of list) {
      const v = this.unwrap<T>(u);
      if (v === EXPIRED) expired++;
      else out.push(v);
    }
    if (expired > 0) {
      const kept = list.filter((u) => !this.isExpired(u));
      if (kept.length === 0) this.deleteRaw();
      else this.setRaw(kept);
    }
    return out;
  }
  /** @internal what {@link get} returns, then cleared (see {@link BaseHandle.takeRaw}). */
  getAndClear(): readonly T[] {
    if (this.oneLookup) return (this.takeRaw() as T[] | undefined) ?? [];
    const v = this.get();
    this.clear();
    return v;
  }
  add(value: T): void {
    this.addReportingNew(value);
  }
  /** @internal adds; true when the current key (and namespace) had no elements before. */
  addReportingNew(value: T): boolean {
    if (value === undefined || value === null)
      throw new InvalidArgumentError(
        `${this.backend.owner}: list state '${this.table.name}' cannot hold ${value}`,
      );
    // NOTE: one lookup of the key's entries (a window's first element creates its list).
    if (this.oneLookup) return this.combineNamespaced(value, append);
    const list = this.raw() as unknown[] | undefined;
    if (list === undefined) {
      this.setRaw([this.wrap(value)]);
      return true;
    }
    this.backend.touch();
    list.push(this.wrap(value));
    return list.length === 1;
  }
  addAll(values: Iterable<T>): void {
    for (const v of values) this.add(v);
  }
  update(values: Iterable<T>): void {
    const list: unknown[] = [];
    for (const v of values) list.push(this.wrap(v));
    if (list.length === 0) this.deleteRaw();
    else this.setRaw(list);
  }
  /** @internal see {@link HeapKeyedStateBackend.mergeNamespaces}. */
  mergeNamespaces(target: Namespace, sources: readonly Namespace[]): void {
    const saved = this.ns;
    try {
      // NOTE: stored units are moved as they are, so with TTL every element keeps its own
      // timestamp; expired elements are dropped on the way.
      const moved: unknown[] = [];
      for (const source of sources) {
        this.ns = source;
        const list = this.raw() as unknown[] | undefined;
        if (list === undefined) continue;
        this.deleteRaw();
        for (const u of list) if (!this.isExpired(u)) moved.push(u);
      }
      if (moved.length === 0) return;
      this.ns = target;
      const current = this.raw() as unknown[] | undefined;
      if (current === undefined) this.setRaw(moved);
      else {
        this.backend.touch();
        for (const u of moved) current.push(u);
      }
    } finally {
      this.ns = saved;
    }
  }
}

class HeapMapState<UK extends Key, UV> extends BaseHandle implements MapState<UK, UV> {
  private map(create: boolean): Map<MapKey, unknown> | undefined {
    let m = this.raw() as Map<MapKey, unknown> | undefined;
    if (m === undefined && create) this.setRaw((m = new Map()));
    else if (create) this.backend.touch();
    return m;
  }
  get(key: UK): UV | undefined {
    const m = this.map(false);
    if (m === undefined) return undefined;
    const ck = canonicalKey(key);
    const u = m.get(ck);
    if (u === undefined) return undefined;
    const v = this.unwrap<UV>(u);
    if (v === EXPIRED) {
      this.removeCanonical(m, ck);
      return undefined;
    }
    return v;
  }
  put(key: UK, value: UV): void {
    this.map(true)!.set(canonicalKey(key), this.wrap(value));
  }
  putAll(entries: Iterable<readonly [UK, UV]>): void {
    for (const [k, v] of entries) this.put(k, v);
  }
  remove(key: UK): void {
    const m = this.map(false);
    if (m !== undefined) this.removeCanonical(m, canonicalKey(key));
  }
  private removeCanonical(m: Map<MapKey, unknown>, ck: MapKey): void {
    this.backend.touch();
    m.delete(ck);
    if (m.size === 0) this.deleteRaw();
  }
  contains(key: UK): boolean {
    return this.get(key) !== undefined;
  }
  *entries(): IterableIterator<[UK, UV]> {
    const m = this.map(false);
    if (m === undefined) return;
    for (const [k, u] of [...m]) {
      const v = this.unwrap<UV>(u);
      if (v === EXPIRED) this.removeCanonical(m, k);
      else yield [decodeKey(k) as UK, v];
    }
  }
  *keys(): IterableIterator<UK> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): IterableIterator<UV> {
    for (const [, v] of this.entries()) yield v;
  }
  isEmpty(): boolean {
    return this.entries().next().done === true;
  }
}

function createHandle(backend: HeapKeyedStateBackend, table: StateTable, d: StateDescriptor): BaseHandle {
  switch (d.kind) {
    case 'value':
      return new HeapValueState(backend, table, d as ValueStateDescriptor<unknown>);
    case 'list':
      return new HeapListState(backend, table, d);
    case 'map':
      return new HeapMapState(backend, table, d);
    case 'reducing':
      return new HeapReducingState(backend, table, d as ReducingStateDescriptor<unknown>);
    case 'aggregating':
      return new HeapAggregatingState(
        backend,
        table,
        d as AggregatingStateDescriptor<unknown, unknown, unknown>,
      );
  }
}
