/**
 * What operators, timers and the runtime need from a keyed-state backend, whichever keeps the
 * entries: {@link HeapKeyedStateBackend} (JavaScript `Map`s, the default) or
 * {@link LmdbKeyedStateBackend} (an embedded LMDB database with a bounded cache on the heap, for
 * state larger than memory).
 *
 * NOTE: both backends share the key handling, the change tracking for incremental checkpoints
 * and the state handles (one implementation of the state semantics: kinds, TTL, namespaces and
 * their merging); the LMDB backend replaces where entries live and how a key group is read for a
 * snapshot or written on a restore. Both produce and take the same {@link KeyGroupSnapshot}s, so a
 * checkpoint taken with one restores with the other (as Flink's canonical savepoints do).
 */
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
  ValueState,
  ValueStateDescriptor,
} from './descriptors.js';
import type { Key } from './hash.js';
import type { MapKey } from './key-codec.js';
import type { KeyGroupRange } from './key-groups.js';
import type { EncodableTables } from './snapshot/key-group-codec.js';
import type { KeyGroupSnapshot } from './snapshot/types.js';

/** A namespace key (e.g. a window's canonical form); `undefined` is the default (void) namespace. */
export type Namespace = string | number;

/**
 * A key's entries of a namespaced state, by namespace (read only): what a heap state handle's
 * `namespacesOfCurrentKey` gives (a small object while the key has one namespace, an `NsMap` for several).
 */
export interface NamespaceEntries {
  readonly size: number;
  get(ns: Namespace): unknown;
  has(ns: Namespace): boolean;
  forEach(f: (value: unknown, ns: Namespace) => void): void;
}

/** The state tables of one key group, by state name (a {@link KeyGroupSnapshot}'s `state`). */
export type KeyGroupTables = KeyGroupSnapshot['state'];

/** A key group to snapshot: whole, or only some keys (canonical forms) of it (a delta). */
export interface SnapshotPart {
  keyGroup: number;
  keys?: readonly MapKey[];
}

/** The keyed state of one subtask of one keyed operator, per key group of its range. */
export interface KeyedStateBackend {
  /** Which backend this is. */
  readonly kind: 'heap' | 'lmdb';
  readonly maxParallelism: number;
  readonly keyGroupRange: KeyGroupRange;
  /** Processing time, for state TTL. */
  readonly now: () => number;
  /** Names the owner (operator subtask) in error messages. */
  readonly owner: string;
  /** One flag per key group of the range: written since its last snapshot. */
  readonly dirty: Uint8Array;
  /**
   * The canonical keys of key group `index` (minus the range start) written since its last
   * snapshot, each once (undefined: none, or not tracked).
   */
  changedKeysOf(index: number): readonly MapKey[] | undefined;
  /** Per key group: the whole group must be written next time. */
  readonly whole: Uint8Array;
  /** Canonical form of the current key. */
  readonly mapKey: MapKey;
  /** Current key group minus the range start. */
  readonly groupIndex: number;
  /** The current key group. */
  readonly currentKeyGroup: number;

  /** Sets the key that state handles refer to (checks that this subtask owns its key group). */
  setCurrentKey(key: Key): void;
  /** Sets the current key when its key group is already known (timers, restore). */
  setCurrentKeyInGroup(key: Key, keyGroup: number, mapKey?: MapKey): void;
  /** The current key; throws when none is set. */
  getCurrentKey(): Key;

  getState<T>(d: ValueStateDescriptor<T>): ValueState<T>;
  getState<T>(d: ListStateDescriptor<T>): ListState<T>;
  getState<UK extends Key, UV>(d: MapStateDescriptor<UK, UV>): MapState<UK, UV>;
  getState<T>(d: ReducingStateDescriptor<T>): ReducingState<T>;
  getState<IN, ACC, OUT>(d: AggregatingStateDescriptor<IN, ACC, OUT>): AggregatingState<IN, OUT>;
  getState(d: StateDescriptor): unknown;
  /** The state a descriptor describes, with a settable namespace (per-window state). */
  getNamespacedState<S>(d: StateDescriptor): S & { setNamespace(ns: Namespace): void };
  /** Merges namespaces `sources` of the current key into `target` (merging windows). */
  mergeNamespaces(d: StateDescriptor, target: Namespace, sources: readonly Namespace[]): void;

  /** Registered state names. */
  stateNames(): string[];
  /** Whether state `name` is namespaced, or `undefined` if it is not registered. */
  isNamespaced(name: string): boolean | undefined;
  /** Every key that has an entry in the given state. */
  keys(stateName: string): IterableIterator<Key>;
  /** Every key with state, with its key group (deduplicated). */
  allKeys(): IterableIterator<[Key, number]>;
  /** Number of entries (keys × namespaces) of a state, or of all states. */
  size(stateName?: string): number;

  /** Marks the current key changed (its key group dirty). */
  touch(): void;
  /** Marks a key group (index in the range) to be written whole next time. */
  touchWhole(index: number): void;
  /** Clears the change tracking of a key group (index in the range) after a snapshot took it. */
  markClean(index: number): void;
  /** Marks every key group clean. */
  clearDirty(): void;
  /** Entries (keys) of the largest table in a key group (index in the range). */
  keysInGroup(index: number): number;

  /** The state of one key group, as plain data (empty tables left out). */
  snapshotKeyGroup(keyGroup: number): KeyGroupTables;
  /**
   * The state of one key group as {@link snapshotKeyGroup} gives it, in the form a checkpoint
   * encodes fastest (the heap: already split into columns by the walk of its entries).
   */
  snapshotKeyGroupForCheckpoint(keyGroup: number): EncodableTables;
  /** The state of some keys (canonical forms) of one key group: an incremental checkpoint's delta. */
  snapshotKeys(keyGroup: number, keys: readonly MapKey[]): KeyGroupTables;
  /** The state of every key group that holds state. */
  snapshot(): Map<number, KeyGroupTables>;
  /**
   * True when whole key groups are read for a checkpoint after its synchronous part, with
   * {@link snapshotKeyGroupsLater} (the LMDB backend: from a read transaction, while processing
   * goes on); false when {@link snapshotKeyGroup} is cheap enough to call in it (the heap).
   */
  readonly readsLater: boolean;
  /**
   * Takes a consistent view of the state now, then reads from it the given key groups, whole or
   * (with `keys`) only those keys, as {@link snapshotKeyGroup} and {@link snapshotKeys} would,
   * over event-loop turns, giving each to `each`; resolves when all were. Writes after the call
   * are not seen. Returns undefined when every part was given to `each` before it returned.
   */
  snapshotKeyGroupsLater(
    parts: readonly SnapshotPart[],
    each: (keyGroup: number, tables: KeyGroupTables) => void,
  ): Promise<void> | undefined;
  /**
   * Snapshots whole key groups for a checkpoint with `take(g)`: now, or (the heap, when a write is
   * the only way to change what the snapshot reads) copy-on-write, before the group's next write
   * or over event-loop turns. Returns undefined when every group was taken before it returned,
   * else a promise that resolves once all were.
   */
  snapshotWholeLater(
    keyGroups: readonly number[],
    take: (keyGroup: number) => void,
  ): Promise<void> | undefined;
  /** Loads key groups; groups outside the range are ignored. */
  restore(groups: Iterable<readonly [number, KeyGroupTables]>): void;
  /** Loads one key group (replacing what it held). */
  restoreKeyGroup(keyGroup: number, data: KeyGroupTables): void;
  /**
   * Restores key groups each when first needed: `install(g)` restores group `g` (its state with
   * {@link restoreKeyGroup}, and what else it holds, such as timers). See the heap backend.
   */
  deferRestore(groups: Iterable<[number, KeyGroupTables]>, install: (keyGroup: number) => void): void;
  /** Whether key group `keyGroup` is restored but not installed yet. */
  isPending(keyGroup: number): boolean;
  /** Key groups restored but not installed yet. */
  readonly pendingGroups: number;
  /** Installs a pending key group (by index in the range) now. */
  installPending(index: number): void;
  /** Installs every pending key group. */
  installAllPending(): void;
  /** Drops all state and releases what the backend holds (the LMDB backend deletes its directory). */
  dispose(): void;
}
