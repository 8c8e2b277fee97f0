/**
 * The LMDB keyed-state backend: keyed state in an embedded LMDB database (the `lmdb` package) on
 * local disk, with a bounded write-back cache on the heap, for state larger than memory (the role
 * of Flink's RocksDB backend).
 *
 * NOTE: the database is working state, not durable state. Each keyed operator subtask opens its
 * own LMDB environment in a fresh directory under the state directory (named after the process,
 * so that directories left by a killed process are removed by the next one that starts there) and
 * deletes it on dispose; it is opened with `noSync` (no fsync: nothing is recovered from it).
 * Recovery comes from checkpoints, which are written to the checkpoint storage (files or Redis) in
 * the same key-group format as the heap backend's.
 *
 * NOTE: layout. One LMDB entry per (key group, state, key): the LMDB key is the array
 * `[keyGroup, stateId, canonicalKey]` in lmdb's ordered-binary key encoding, so a key group is a
 * range (a snapshot of a group is one range read, a restore one range write). A namespaced state
 * keeps every namespace (window) of a key in that key's entry, as the heap backend keeps them in
 * one inner map. Values are encoded with the checkpoint codec (msgpackr, `state/snapshot/format`)
 * in their snapshot form (maps as entry arrays), so a value read back is what a restore from a
 * checkpoint would give.
 *
 * NOTE: the cache. The state handles are the heap backend's (one implementation of the state
 * semantics); where they would read a table's `Map`, they read an entry of the cache, loaded from
 * LMDB on a miss. An entry written, or mutated in place and `touch`ed, is dirty; the dirty entries
 * are written to LMDB in one synchronous transaction when the cache is full (then the cache is
 * emptied, only between keys: at `setCurrentKey`) and before a snapshot. So, as with Flink's
 * RocksDB backend and unlike the heap backend, a value mutated by user code after `update()`
 * without another `update()` is not kept: it is lost once its entry leaves the cache.
 *
 * NOTE: limits. A canonical key must fit an LMDB key (about 1.9 kB with the key group and state
 * id); the value of one key (all its namespaces, a whole list or map state) is read and written
 * whole, so a key with a huge list or map state is slow, as with the heap backend's snapshots.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { getHeapStatistics } from 'node:v8';
import type { RootDatabase } from 'lmdb';
import { Packr } from 'msgpackr';
import type { StateKind } from './descriptors.js';
import { StateError } from './errors.js';
import type { Key } from './hash.js';
import {
  type EntryStore,
  entryPusher,
  FlatSink,
  HeapKeyedStateBackend,
  type HeapKeyedStateBackendOptions,
  type NsEntries,
  nsForEach,
  nsFromFlat,
  restoreValue,
  type StateTable,
  sendKey,
  snapshotValue,
} from './heap-backend.js';
import { decodeKey, type MapKey } from './key-codec.js';
import type { KeyGroupTables, SnapshotPart } from './keyed-backend.js';
import type { EncodableTables } from './snapshot/key-group-codec.js';

/** Options of an {@link LmdbKeyedStateBackend}. */
export interface LmdbKeyedStateBackendOptions extends HeapKeyedStateBackendOptions {
  /** The state directory: the backend opens its database in a fresh subdirectory of it. */
  dir: string;
  /** Keys held in the heap cache before it is written to LMDB and emptied (default: {@link defaultCacheEntries}). */
  cacheEntries?: number;
}

/**
 * The codec of stored values: the checkpoint codec's settings (`state/snapshot/format.ts`), so a
 * value reads back as it would from a checkpoint. NOTE: `copyBuffers`: binary data in a value is
 * copied out of the buffer it was read from, which lmdb reuses (`getBinaryFast`).
 */
const packr = new Packr({ useRecords: true, moreTypes: true, mapsAsObjects: false, copyBuffers: true });
const encode = (value: unknown): Uint8Array => packr.pack(value);
const decode = <T = unknown>(bytes: Uint8Array): T => packr.unpack(bytes) as T;

/**
 * The default size of the cache, in keys: a share of the heap limit (`--max-old-space-size`) of
 * the process, at an assumed 512 bytes per cached key (its entry, and a small value): an eighth of
 * the heap limit, between 10 000 and 2 000 000 keys. With a 1 GiB heap: 262 144 keys.
 *
 * NOTE: the cache is what makes the LMDB backend fast (Flink's RocksDB has its block cache and
 * memtables for the same reason): a key found there costs about what it costs on the heap; a key
 * not found costs an LMDB read, a decode and, once changed, an encode and an LMDB write (measured:
 * 5-8 times the heap backend's cost per record when every record misses). It is shared by every
 * keyed subtask of the process in the sense that each gets this many: with several keyed
 * operators per slot, set `cacheEntries` lower.
 */
export function defaultCacheEntries(): number {
  const limit = getHeapStatistics().heap_size_limit;
  return Math.max(10_000, Math.min(2_000_000, Math.floor(limit / 8 / 512)));
}

/** Milliseconds of reading key groups for a checkpoint between two event-loop turns. */
const SLICE_MS = 10;

/** A slot of a cache entry that was loaded and holds nothing (a missing or deleted entry). */
const ABSENT: unique symbol = Symbol('absent');
/** Marks a bigint key in an LMDB key (ordered-binary would read it back as a number). */
const BIGINT = '\u0000bigint';

/**
 * The cached state of one key: a slot per state id (undefined: not loaded), the first in `s0`,
 * the others in `rest` (see {@link slotOf}).
 */
interface CacheEntry {
  readonly index: number;
  readonly mapKey: MapKey;
  /** The slot of state id 0 (most keyed operators have one state: no array per key). */
  s0: unknown;
  /** The slots of state ids 1 and up (index id − 1), once one was set. */
  rest: unknown[] | undefined;
  dirty: boolean;
  /**
   * Per state id, a bit: whether LMDB holds an entry, when `known` says so (it was read, or
   * written by a flush); a flush needs it to keep the key counts without reading LMDB again.
   */
  stored: number;
  known: number;
}

type LmdbKey = (string | number | boolean)[];

let lmdbModule: typeof import('lmdb') | undefined;
/** Loads lmdb (its native binding) on first use only: a job on the heap backend never loads it. */
function lmdb(): typeof import('lmdb') {
  lmdbModule ??= createRequire(import.meta.url)('lmdb') as typeof import('lmdb');
  return lmdbModule;
}

/**
 * Removes the database directories that processes no longer running left in `dir` (a process
 * killed with SIGKILL cannot delete its own).
 */
function removeStale(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^p(\d+)-/.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      continue;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    rmSync(join(dir, name), { recursive: true, force: true });
  }
}

/** The keyed state of one operator subtask in LMDB; see the module comment. */
export class LmdbKeyedStateBackend extends HeapKeyedStateBackend {
  override readonly kind = 'lmdb' as const;
  /** The directory of this backend's database (deleted on dispose). */
  readonly path: string;
  private readonly db: RootDatabase<Uint8Array, LmdbKey>;
  private readonly cacheLimit: number;
  private readonly caches: (Map<MapKey, CacheEntry> | undefined)[];
  private cached = 0;
  private current: CacheEntry | undefined = undefined;
  private dirtyEntries: CacheEntry[] = [];
  private readonly views: LmdbTableView[] = [];
  /** Per state id, per key group of the range: entries in LMDB. */
  private readonly counts: Float64Array[] = [];
  private disposed = false;
  /**
   * Per key group of the range: 1 while every key of the group with state is in the cache (from
   * the start, until the cache is first emptied or the group restored): its snapshot is taken
   * from the cache, as the heap backend takes it from its tables, without reading LMDB.
   */
  private readonly inCache: Uint8Array;

  constructor(options: LmdbKeyedStateBackendOptions) {
    super(options);
    this.cacheLimit = Math.max(1, options.cacheEntries ?? defaultCacheEntries());
    this.caches = new Array(this.keyGroupRange.size).fill(undefined);
    this.inCache = new Uint8Array(this.keyGroupRange.size).fill(1);
    const safe = (options.owner.match(/\(([^)]*)\)/)?.[1] ?? 'op').replace(/[^A-Za-z0-9_.-]/g, '_');
    this.path = join(options.dir, `p${process.pid}-${randomBytes(4).toString('hex')}-${safe}`);
    try {
      mkdirSync(options.dir, { recursive: true });
      removeStale(options.dir);
      mkdirSync(this.path);
      this.db = lmdb().open<Uint8Array, LmdbKey>({
        path: this.path,
        encoding: 'binary',
        noSync: true,
        noMetaSync: true,
        overlappingSync: false,
        cache: false,
        compression: false,
      });
    } catch (e) {
      rmSync(this.path, { recursive: true, force: true });
      throw new StateError(
        `${options.owner}: cannot open the LMDB state backend in the state directory '${options.dir}': ${(e as Error).message}`,
      );
    }
  }

  // ---- the cache, used by the state handles through group() ----

  override setCurrentKey(key: Key): void {
    if (this.cached >= this.cacheLimit) this.evict();
    super.setCurrentKey(key);
    this.current = undefined;
  }

  override setCurrentKeyInGroup(key: Key, keyGroup: number, mapKey?: MapKey): void {
    if (this.cached >= this.cacheLimit) this.evict();
    super.setCurrentKeyInGroup(key, keyGroup, mapKey);
    this.current = undefined;
  }

  override touch(): void {
    super.touch();
    const e = this.entry();
    if (!e.dirty) {
      e.dirty = true;
      this.dirtyEntries.push(e);
    }
  }

  /** @internal */
  override group(table: StateTable, create: boolean): EntryStore | undefined {
    if (this.groupIndex < 0) this.getCurrentKey();
    if (create) this.touch();
    let view = this.views[table.id];
    if (view === undefined) this.views[table.id] = view = new LmdbTableView(this, table);
    return view;
  }

  /** The cache entry of the current key. */
  private entry(): CacheEntry {
    let e = this.current;
    if (e !== undefined) return e;
    const index = this.groupIndex;
    if (index < 0) this.getCurrentKey();
    let m = this.caches[index];
    if (m === undefined) this.caches[index] = m = new Map();
    const mapKey = this.mapKey;
    e = m.get(mapKey);
    if (e === undefined) {
      e = {
        index,
        mapKey,
        s0: undefined,
        rest: undefined,
        dirty: false,
        stored: 0,
        known: 0,
      };
      m.set(mapKey, e);
      this.cached++;
    }
    this.current = e;
    return e;
  }

  /** Sets a slot of a cache entry (see {@link slotOf}). */
  private setSlot(e: CacheEntry, id: number, v: unknown): void {
    if (id === 0) {
      e.s0 = v;
      return;
    }
    // NOTE: an array of the other tables' number: an empty literal would grow to 17 slots at its
    // first write.
    const rest = (e.rest ??= new Array(Math.max(1, this.tables.size - 1)));
    rest[id - 1] = v;
  }

  /** @internal the current key's value of a state (undefined: none). */
  load(table: StateTable): unknown {
    const e = this.entry();
    let v = slotOf(e, table.id);
    if (v === undefined) {
      const bytes = this.db.getBinaryFast(this.lmdbKey(e.index, table.id, e.mapKey));
      const bit = table.id < 31 ? 1 << table.id : 0;
      e.known |= bit;
      if (bytes === undefined) v = ABSENT;
      else {
        v = fromStored(table, decode(bytes));
        e.stored |= bit;
      }
      this.setSlot(e, table.id, v);
    }
    return v === ABSENT ? undefined : v;
  }

  /** @internal sets the current key's value of a state (undefined: deletes it). */
  store(table: StateTable, value: unknown): void {
    const e = this.entry();
    this.setSlot(e, table.id, value === undefined ? ABSENT : value);
    if (!e.dirty) {
      e.dirty = true;
      this.dirtyEntries.push(e);
    }
  }

  private lmdbKey(index: number, stateId: number, mapKey: MapKey): LmdbKey {
    const g = index + this.keyGroupRange.start;
    if (typeof mapKey === 'bigint') return [g, stateId, BIGINT, mapKey.toString()];
    // NOTE: -0 and 0 are one Map key, and ordered-binary does not read -0 back.
    return [g, stateId, mapKey === 0 ? 0 : mapKey];
  }

  private countsOf(id: number): Float64Array {
    let c = this.counts[id];
    if (c === undefined) this.counts[id] = c = new Float64Array(this.keyGroupRange.size);
    return c;
  }

  /** Writes the dirty cache entries to LMDB, in one transaction. */
  flush(): void {
    if (this.dirtyEntries.length === 0) return;
    const entries = this.dirtyEntries;
    this.dirtyEntries = [];
    const db = this.db;
    const tables: StateTable[] = [];
    for (const t of this.tables.values()) tables[t.id] = t;
    try {
      db.transactionSync(() => {
        for (const e of entries) {
          e.dirty = false;
          const n = 1 + (e.rest?.length ?? 0);
          for (let id = 0; id < n; id++) {
            const v = slotOf(e, id);
            if (v === undefined) continue;
            const key = this.lmdbKey(e.index, id, e.mapKey);
            const bit = 1 << id;
            // NOTE: state ids above 30 do not fit the bit sets: LMDB is asked whether it holds them.
            const stored = id < 31 && (e.known & bit) !== 0 ? (e.stored & bit) !== 0 : db.doesExist(key);
            if (v === ABSENT) {
              if (stored) {
                db.removeSync(key);
                this.countsOf(id)[e.index]!--;
              }
              e.stored &= ~bit;
            } else {
              if (!stored) this.countsOf(id)[e.index]!++;
              db.putSync(key, encode(toStored(tables[id]!, v)));
              e.stored |= bit;
            }
            if (id < 31) e.known |= bit;
          }
        }
      });
    } catch (e) {
      throw new StateError(
        `${this.owner}: writing state to LMDB (${this.path}) failed: ${(e as Error).message}`,
      );
    }
  }

  /** Writes the dirty entries and empties the cache. */
  private evict(): void {
    this.flush();
    this.inCache.fill(0);
    this.caches.fill(undefined);
    this.cached = 0;
    this.current = undefined;
  }

  // ---- key groups: counts, snapshots, restores ----

  override keysInGroup(index: number): number {
    // NOTE: a group whose keys are all in the cache may not have been flushed (a checkpoint takes
    // it from the cache): its cache has every key (some possibly deleted: an upper bound).
    if (this.inCache[index] === 1) return this.caches[index]?.size ?? 0;
    let n = 0;
    for (const c of this.counts) if (c !== undefined) n = Math.max(n, c[index]!);
    return n;
  }

  /** Flat, as {@link snapshotKeyGroup} (a checkpoint reads whole key groups later, see readsLater). */
  override snapshotKeyGroupForCheckpoint(keyGroup: number): EncodableTables {
    return this.snapshotKeyGroup(keyGroup);
  }

  override snapshotKeyGroup(keyGroup: number): KeyGroupTables {
    this.flush();
    const index = keyGroup - this.keyGroupRange.start;
    const out: KeyGroupTables = {};
    const tables: StateTable[] = [];
    for (const t of this.tables.values()) tables[t.id] = t;
    for (const c of this.counts) if (c !== undefined) c[index] = 0;
    for (const { key, value } of this.db.getRange({ start: [keyGroup], end: [keyGroup + 1] })) {
      const table = tables[key[1] as number];
      if (table === undefined) continue;
      let t = out[table.name];
      if (t === undefined) out[table.name] = t = { kind: table.kind, namespaced: table.namespaced, data: [] };
      pushStored(t.data, table, mapKeyOf(key), decode(value));
      this.countsOf(table.id)[index]!++;
    }
    return out;
  }

  override readonly readsLater: boolean = true;

  /**
   * Writes the cache's changes to LMDB and opens a read transaction at once (the synchronous part
   * of a checkpoint: O(keys changed since the last flush)); then reads the key groups from that
   * transaction in slices of about 10 ms of event-loop turns, while processing goes on (LMDB's
   * MVCC: later writes are not seen). NOTE: a key group is read in one turn: about 150 ms for
   * 150 000 keys.
   */
  override snapshotKeyGroupsLater(
    allParts: readonly SnapshotPart[],
    each: (keyGroup: number, tables: KeyGroupTables) => void,
  ): Promise<void> | undefined {
    // Key groups whose keys are all in the cache: taken from it now (the heap's cost).
    const parts: SnapshotPart[] = [];
    for (const p of allParts)
      if (this.inCache[p.keyGroup - this.keyGroupRange.start] === 1)
        each(p.keyGroup, this.snapshotFromCache(p.keyGroup, p.keys));
      else parts.push(p);
    if (parts.length === 0) return undefined;
    this.flush();
    const txn = this.db.useReadTransaction();
    // NOTE: lmdb reads from a given transaction with `{ transaction }` (its typings leave it out).
    const getFast = this.db.getBinaryFast.bind(this.db) as (
      key: LmdbKey,
      options: object,
    ) => Buffer | undefined;
    const getInTxn = (key: LmdbKey) => getFast(key, { transaction: txn });
    const tables: StateTable[] = [];
    for (const t of this.tables.values()) tables[t.id] = t;
    const read = async (): Promise<void> => {
      try {
        let slice = Number.NEGATIVE_INFINITY;
        const yieldTurn = async (): Promise<void> => {
          await nextTurn();
          slice = performance.now();
          if (this.disposed) throw this.closedDuringSnapshot();
        };
        for (const { keyGroup, keys } of parts) {
          if (performance.now() - slice > SLICE_MS) await yieldTurn();
          if (keys !== undefined) {
            // A delta: the keys that changed, each looked up in the read transaction.
            const index = keyGroup - this.keyGroupRange.start;
            const out: KeyGroupTables = {};
            for (const table of tables) {
              if (table === undefined) continue;
              const data: unknown[] = [];
              for (let i = 0; i < keys.length; i++) {
                if ((i & 1023) === 1023 && performance.now() - slice > SLICE_MS) await yieldTurn();
                const k = keys[i]!;
                const bytes = getInTxn(this.lmdbKey(index, table.id, k));
                if (bytes !== undefined) pushStored(data, table, k, decode(bytes));
              }
              if (data.length > 0) out[table.name] = { kind: table.kind, namespaced: table.namespaced, data };
            }
            each(keyGroup, out);
            continue;
          }
          const out: KeyGroupTables = {};
          for (const { key, value } of this.db.getRange({
            start: [keyGroup],
            end: [keyGroup + 1],
            transaction: txn,
          })) {
            const table = tables[key[1] as number];
            if (table === undefined) continue;
            let t = out[table.name];
            if (t === undefined)
              out[table.name] = t = { kind: table.kind, namespaced: table.namespaced, data: [] };
            pushStored(t.data, table, mapKeyOf(key), decode(value));
          }
          each(keyGroup, out);
        }
      } finally {
        if (!this.disposed) txn.done();
      }
    };
    return read();
  }

  /** A key group (or some keys of it) whose keys are all in the cache, from the cache. */
  private snapshotFromCache(keyGroup: number, keys: readonly MapKey[] | undefined): KeyGroupTables {
    const m = this.caches[keyGroup - this.keyGroupRange.start];
    const out: KeyGroupTables = {};
    if (m === undefined) return out;
    for (const table of this.tables.values()) {
      const data: unknown[] = [];
      const id = table.id;
      const push = cachedPusher(data, table);
      if (keys !== undefined)
        for (let i = 0; i < keys.length; i++) {
          const e = m.get(keys[i]!);
          const v = e === undefined ? undefined : slotOf(e, id);
          if (v !== undefined && v !== ABSENT) push(v, keys[i]!);
        }
      else
        m.forEach((e, k) => {
          const v = slotOf(e, id);
          if (v !== undefined && v !== ABSENT) push(v, k);
        });
      if (data.length > 0) out[table.name] = { kind: table.kind, namespaced: table.namespaced, data };
    }
    return out;
  }

  override snapshotKeys(keyGroup: number, keys: readonly MapKey[]): KeyGroupTables {
    this.flush();
    const index = keyGroup - this.keyGroupRange.start;
    const out: KeyGroupTables = {};
    for (const table of this.tables.values()) {
      const data: unknown[] = [];
      const cache = this.caches[index];
      const push = cachedPusher(data, table);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        // NOTE: a key still in the cache (flushed above) is taken from there, without a read.
        const e = cache?.get(k);
        const v = e === undefined ? undefined : slotOf(e, table.id);
        if (v === ABSENT) continue;
        if (v !== undefined) push(v, k);
        else {
          const bytes = this.db.getBinaryFast(this.lmdbKey(index, table.id, k));
          if (bytes !== undefined) pushStored(data, table, k, decode(bytes));
        }
      }
      if (data.length > 0) out[table.name] = { kind: table.kind, namespaced: table.namespaced, data };
    }
    return out;
  }

  override restoreKeyGroup(keyGroup: number, data: KeyGroupTables): void {
    this.flush();
    const index = keyGroup - this.keyGroupRange.start;
    const m = this.caches[index];
    if (m !== undefined) {
      this.cached -= m.size;
      this.caches[index] = undefined;
      this.current = undefined;
    }
    this.inCache[index] = 0;
    const db = this.db;
    const entries: [StateTable, KeyGroupTables[string]][] = Object.entries(data).map(([name, t]) => [
      this.restoredTable(name, t),
      t,
    ]);
    db.transactionSync(() => {
      for (const key of db.getKeys({ start: [keyGroup], end: [keyGroup + 1] })) db.removeSync(key);
      for (const c of this.counts) if (c !== undefined) c[index] = 0;
      for (const [table, t] of entries) {
        const counts = this.countsOf(table.id);
        const d = t.data;
        if (!t.namespaced)
          for (let i = 0; i < d.length; i += 2) {
            db.putSync(this.lmdbKey(index, table.id, d[i] as MapKey), encode(d[i + 1]));
            counts[index]!++;
          }
        else
          for (let i = 0; i < d.length; ) {
            const n = d[i + 1] as number;
            db.putSync(this.lmdbKey(index, table.id, d[i] as MapKey), encode(d.slice(i + 2, i + 2 + 2 * n)));
            counts[index]!++;
            i += 2 + 2 * n;
          }
      }
    });
    this.touchWhole(index);
  }

  // ---- listing ----

  override *keys(stateName: string): IterableIterator<Key> {
    const table = this.tables.get(stateName);
    if (table === undefined) return;
    this.flush();
    const { start, end } = this.keyGroupRange;
    for (const key of this.db.getKeys({ start: [start], end: [end + 1] }))
      if (key[1] === table.id) yield decodeKey(mapKeyOf(key));
  }

  override *allKeys(): IterableIterator<[Key, number]> {
    this.flush();
    const { start, end } = this.keyGroupRange;
    let group = -1;
    let seen = new Set<MapKey>();
    for (const key of this.db.getKeys({ start: [start], end: [end + 1] })) {
      const g = key[0] as number;
      if (g !== group) {
        group = g;
        seen = new Set();
      }
      const k = mapKeyOf(key);
      if (seen.has(k)) continue;
      seen.add(k);
      yield [decodeKey(k), g];
    }
  }

  override size(stateName?: string): number {
    this.flush();
    const { start, end } = this.keyGroupRange;
    const tables: StateTable[] = [];
    for (const t of this.tables.values()) tables[t.id] = t;
    let n = 0;
    for (const { key, value } of this.db.getRange({ start: [start], end: [end + 1] })) {
      const table = tables[key[1] as number];
      if (table === undefined || (stateName !== undefined && table.name !== stateName)) continue;
      n += table.namespaced ? decode<unknown[]>(value).length >> 1 : 1;
    }
    return n;
  }

  /** Closes the database and deletes its directory. */
  override dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    super.dispose();
    this.caches.fill(undefined);
    this.dirtyEntries = [];
    this.current = undefined;
    // NOTE: closing unmaps the files; deleting them while mapped is fine on POSIX systems.
    this.db.close().catch(() => {});
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** A table's entries in the current key group, as the state handles see them: the cache. */
class LmdbTableView implements EntryStore {
  constructor(
    private readonly backend: LmdbKeyedStateBackend,
    private readonly table: StateTable,
  ) {}
  // NOTE: handles only pass the current key, so the key argument is not needed.
  get(_key: MapKey): unknown {
    return this.backend.load(this.table);
  }
  set(_key: MapKey, value: unknown): this {
    this.backend.store(this.table, value);
    return this;
  }
  delete(_key: MapKey): boolean {
    this.backend.store(this.table, undefined);
    return true;
  }
}

/**
 * Appends a cached value of `table` (the form the state handles use) and its key to a snapshot's
 * flat data, as the heap backend's snapshot does: directly, without its stored form.
 */
function cachedPusher(data: unknown[], table: StateTable): (v: unknown, k: MapKey) => void {
  if (!table.namespaced) return entryPusher(data, table.kind);
  const sink = new FlatSink(data);
  return (v, k) => sendKey(table.kind, k, v, undefined, sink);
}

/** A slot of a cache entry: the value of state `id` for its key (undefined: not loaded). */
function slotOf(e: CacheEntry, id: number): unknown {
  return id === 0 ? e.s0 : e.rest?.[id - 1];
}

/** The canonical key of an LMDB key. */
function mapKeyOf(key: LmdbKey): MapKey {
  return key.length === 4 ? BigInt(key[3] as string) : (key[2] as MapKey);
}

/** A value as stored in LMDB: its snapshot form; a namespaced entry as `[ns, value, ...]`. */
function toStored(table: StateTable, v: unknown): unknown {
  if (!table.namespaced) return snapshotValue(table.kind, v);
  const out: unknown[] = [];
  nsForEach(v as NsEntries, (value, ns) => {
    out.push(ns, snapshotValue(table.kind, value));
  });
  return out;
}

/** A stored value in the form the state handles use. */
function fromStored(table: StateTable, stored: unknown): unknown {
  if (!table.namespaced) return restoreValue(table.kind, stored);
  const flat = stored as unknown[];
  return nsFromFlat(flat, 0, flat.length >> 1, (v) => restoreValue(table.kind, v));
}

/** Appends a stored value to a snapshot's flat data (see `TableSnapshot`). */
function pushStored(
  data: unknown[],
  table: { kind: StateKind; namespaced: boolean },
  k: MapKey,
  v: unknown,
): void {
  if (!table.namespaced) data.push(k, v);
  else {
    const flat = v as unknown[];
    data.push(k, flat.length >> 1);
    for (let i = 0; i < flat.length; i++) data.push(flat[i]);
  }
}
