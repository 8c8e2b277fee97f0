/**
 * How one key group of one operator (its state tables and timers) is written to a checkpoint.
 *
 * In memory, a snapshot is flat arrays (see `snapshotKeyGroup` and `snapshotByKeyGroup`); written,
 * each is split into columns: keys, entry counts, namespaces, values, timestamps. A column of
 * numbers becomes the narrowest typed array that holds them, which msgpackr copies as bytes, and
 * namespaces are written once per key group, each entry referring to its namespace by index. A
 * column holding anything else stays an array that msgpackr encodes value by value, as before.
 * Measured on 1 M window entries with their timers (128 key groups): version 2 took 490 ms and
 * 34.8 MB (a window object per timer is the costly part), this takes 90 ms and 15.8 MB.
 */
import { decode, encode } from './format.js';
import type { KeyGroupSnapshot, TableSnapshot, TimersSnapshot } from './types.js';

/** A column: numbers as a typed array, anything else as a plain array. */
type Column = Float64Array | Uint32Array | Uint16Array | Uint8Array | unknown[];

/** A state table as written: its flat `data` split into columns. */
export interface EncodedTable {
  kind: TableSnapshot['kind'];
  namespaced: boolean;
  /** Keys (canonical forms). */
  k: Column;
  /** Namespaced tables: entries per key. */
  c?: Column;
  /** Namespaced tables: each entry's namespace, as an index into `ns`. */
  s?: Column;
  ns?: unknown[];
  /** Values, one per entry. */
  v: Column;
}

/** Timers as written: each distinct namespace once (`ns`), then columns per time domain. */
interface EncodedTimers {
  ns: unknown[];
  event: [Column, Column, Column];
  processing: [Column, Column, Column];
}

interface EncodedKeyGroup {
  /** Format of this encoding (checkpoint version 3). */
  f: 3;
  state: Record<string, EncodedTable>;
  timers: Record<string, EncodedTimers>;
  replaces?: KeyGroupSnapshot['replaces'];
}

/**
 * A state table already split into the columns it is written as, by a backend's walk of its
 * entries ({@link TableColumnsBuilder}): written without building the flat `data` of a
 * {@link TableSnapshot} first and splitting it again (the synchronous part of a checkpoint that
 * writes a key group whole). Each column is what {@link toColumn} makes of its values.
 */
export interface TableColumns extends EncodedTable {
  readonly columns: true;
}

/** A key group's state tables as the encoder takes them: flat, or already in columns. */
export type EncodableTables = Record<string, TableSnapshot | TableColumns>;

/** A key group as {@link encodeKeyGroupSnapshot} takes it. */
export interface EncodableKeyGroup {
  state: EncodableTables;
  timers: Record<string, TimersSnapshot | TimerColumns>;
  replaces?: KeyGroupSnapshot['replaces'];
}

/**
 * Builds a {@link TableColumns} from a walk of a table's entries: {@link plain} per key of a table
 * without namespaces; {@link key} then {@link entry} per namespace for a namespaced one.
 */
export class TableColumnsBuilder {
  private readonly k: ColumnBuilder;
  private readonly c: ColumnBuilder;
  private readonly s: ColumnBuilder;
  private readonly v: ColumnBuilder;
  private readonly dictionary = new Dictionary();
  constructor(
    private readonly kind: TableSnapshot['kind'],
    private readonly namespaced: boolean,
    /** The number of keys the walk will give (a hint: the columns grow past it). */
    keys: number,
  ) {
    this.k = new ColumnBuilder(keys);
    this.v = new ColumnBuilder(keys);
    this.c = new ColumnBuilder(namespaced ? keys : 0);
    this.s = new ColumnBuilder(namespaced ? keys : 0);
  }
  plain(key: unknown, value: unknown): void {
    this.k.push(key);
    this.v.push(value);
  }
  /** A key with `n` namespaces: `n` calls of {@link entry} follow. */
  key(key: unknown, n: number): void {
    this.k.push(key);
    this.c.push(n);
  }
  entry(namespace: unknown, value: unknown): void {
    this.s.push(this.dictionary.index(namespace, namespace));
    this.v.push(value);
  }
  build(): TableColumns {
    const { kind, namespaced } = this;
    const k = this.k.build();
    const v = this.v.build();
    if (!namespaced) return { columns: true, kind, namespaced, k, v };
    return {
      columns: true,
      kind,
      namespaced,
      k,
      c: this.c.build(),
      s: this.s.build(),
      ns: this.dictionary.values,
      v,
    };
  }
}

/**
 * One timer service's timers of one key group already in the columns they are written as, by a
 * walk of the timers ({@link TimerColumnsBuilder}): what {@link encodeKeyGroupSnapshot} writes for
 * the {@link TimersSnapshot} of the same timers, without the flat arrays.
 */
export interface TimerColumns {
  readonly columns: true;
  readonly encoded: EncodedTimers;
}

/**
 * Builds a {@link TimerColumns} from a walk of a key group's timers: {@link add} per timer, every
 * event-time timer before the processing-time ones, each in the order of the flat snapshot.
 */
export class TimerColumnsBuilder {
  private readonly dictionary = new Dictionary();
  private readonly eventKeys = new ColumnBuilder(0);
  private readonly eventNamespaces = new ColumnBuilder(0);
  private readonly eventTimes = new ColumnBuilder(0);
  private readonly processingKeys = new ColumnBuilder(0);
  private readonly processingNamespaces = new ColumnBuilder(0);
  private readonly processingTimes = new ColumnBuilder(0);
  private lastNamespace: unknown = undefined;
  private lastIndex = -1;
  add(processing: boolean, key: unknown, namespace: unknown, timestamp: number): void {
    // NOTE: timers in a row usually share their namespace object (a window, a constant): its
    // index is known without asking the window for its canonical form.
    let index = this.lastIndex;
    if (index < 0 || namespace !== this.lastNamespace) {
      index = this.lastIndex = this.dictionary.index(namespaceId(namespace), namespace);
      this.lastNamespace = namespace;
    }
    if (processing) {
      this.processingKeys.push(key);
      this.processingNamespaces.push(index);
      this.processingTimes.push(timestamp);
    } else {
      this.eventKeys.push(key);
      this.eventNamespaces.push(index);
      this.eventTimes.push(timestamp);
    }
  }
  build(): TimerColumns {
    return {
      columns: true,
      encoded: {
        ns: this.dictionary.values,
        event: [this.eventKeys.build(), this.eventNamespaces.build(), this.eventTimes.build()],
        processing: [
          this.processingKeys.build(),
          this.processingNamespaces.build(),
          this.processingTimes.build(),
        ],
      },
    };
  }
}

/**
 * One column being built, as {@link toColumn} would make it of the same values: numbers go into a
 * growing `Float64Array`, noting whether they are all unsigned integers and their largest, until
 * the first value that is not a number turns the column into a plain array. No array of every
 * value is built and scanned again (about a third of a whole key group's walk and encoding).
 */
class ColumnBuilder {
  private numbers: Float64Array;
  private n = 0;
  private max = 0;
  private integers = true;
  private values: unknown[] | undefined = undefined;
  constructor(capacity: number) {
    this.numbers = new Float64Array(Math.max(8, capacity));
  }
  push(x: unknown): void {
    if (this.values !== undefined) {
      this.values.push(x);
      return;
    }
    if (typeof x !== 'number') {
      const values = (this.values = new Array<unknown>(this.n));
      for (let i = 0; i < this.n; i++) values[i] = this.numbers[i];
      values.push(x);
      return;
    }
    if (this.n === this.numbers.length) {
      const grown = new Float64Array(2 * this.n);
      grown.set(this.numbers);
      this.numbers = grown;
    }
    this.numbers[this.n++] = x;
    // NOTE: -0 is not an unsigned integer (it would come back as 0); NaN and fractions are not either.
    if (this.integers) {
      if (x >>> 0 !== x || (x === 0 && 1 / x < 0)) this.integers = false;
      else if (x > this.max) this.max = x;
    }
  }
  build(): Column {
    if (this.values !== undefined) return this.values;
    const numbers = this.numbers.subarray(0, this.n);
    if (!this.integers) return numbers.slice();
    const max = this.max;
    return max < 0x100
      ? new Uint8Array(numbers)
      : max < 0x10000
        ? new Uint16Array(numbers)
        : new Uint32Array(numbers);
  }
}

/** Timers already encoded, by the collection they were encoded from. */
const encodedTimers = new WeakMap<TimersSnapshot, EncodedTimers>();

/** Encodes one key group's state and timers for a checkpoint. */
export function encodeKeyGroupSnapshot(kg: EncodableKeyGroup): Uint8Array {
  const state: Record<string, EncodedTable> = {};
  for (const [name, t] of Object.entries(kg.state)) state[name] = encodeTable(t);
  const timers: Record<string, EncodedTimers> = {};
  for (const [name, t] of Object.entries(kg.timers)) {
    if ('columns' in t) {
      timers[name] = t.encoded;
      continue;
    }
    // NOTE: timers collected again unchanged come as the same arrays: their columns are built once.
    let encoded = encodedTimers.get(t);
    if (encoded === undefined) encodedTimers.set(t, (encoded = encodeTimers(t)));
    timers[name] = encoded;
  }
  const out: EncodedKeyGroup = { f: 3, state, timers };
  if (kg.replaces !== undefined) out.replaces = kg.replaces;
  return encode(out);
}

/** Decodes what {@link encodeKeyGroupSnapshot} wrote, and key groups of version-2 checkpoints. */
export function decodeKeyGroupSnapshot(bytes: Uint8Array): KeyGroupSnapshot {
  const raw = decode<EncodedKeyGroup | KeyGroupSnapshot>(bytes);
  if (!('f' in raw)) return raw;
  const state: KeyGroupSnapshot['state'] = {};
  for (const [name, t] of Object.entries(raw.state)) state[name] = decodeTable(t);
  const timers: Record<string, TimersSnapshot> = {};
  for (const [name, t] of Object.entries(raw.timers)) timers[name] = decodeTimers(t);
  const out: KeyGroupSnapshot = { state, timers };
  if (raw.replaces !== undefined) out.replaces = raw.replaces;
  return out;
}

function encodeTable(t: TableSnapshot | TableColumns): EncodedTable {
  if ('columns' in t) {
    // NOTE: the fields in the order of the flat path's, so both write the same bytes.
    if (!t.namespaced) return { kind: t.kind, namespaced: false, k: t.k, v: t.v };
    return {
      kind: t.kind,
      namespaced: true,
      k: t.k,
      c: t.c ?? toColumn([]),
      s: t.s ?? toColumn([]),
      ns: t.ns ?? [],
      v: t.v,
    };
  }
  const d = t.data;
  if (!t.namespaced) {
    const n = d.length / 2;
    const k = new Array<unknown>(n);
    const v = new Array<unknown>(n);
    for (let i = 0, j = 0; j < n; i += 2, j++) {
      k[j] = d[i];
      v[j] = d[i + 1];
    }
    return { kind: t.kind, namespaced: false, k: toColumn(k), v: toColumn(v) };
  }
  const k: unknown[] = [];
  const c: unknown[] = [];
  const s: unknown[] = [];
  const v: unknown[] = [];
  const dictionary = new Dictionary();
  for (let i = 0; i < d.length; ) {
    const n = d[i + 1] as number;
    k.push(d[i]);
    c.push(n);
    i += 2;
    for (let e = 0; e < n; e++, i += 2) {
      s.push(dictionary.index(d[i], d[i]));
      v.push(d[i + 1]);
    }
  }
  return {
    kind: t.kind,
    namespaced: true,
    k: toColumn(k),
    c: toColumn(c),
    s: toColumn(s),
    ns: dictionary.values,
    v: toColumn(v),
  };
}

function decodeTable(t: EncodedTable): TableSnapshot {
  const k = fromColumn(t.k);
  const v = fromColumn(t.v);
  const data: unknown[] = [];
  if (!t.namespaced) {
    for (let j = 0; j < k.length; j++) data.push(k[j], v[j]);
    return { kind: t.kind, namespaced: false, data };
  }
  const c = fromColumn(t.c ?? []);
  const s = fromColumn(t.s ?? []);
  const ns = t.ns ?? [];
  for (let j = 0, e = 0; j < k.length; j++) {
    const n = c[j] as number;
    data.push(k[j], n);
    for (let x = 0; x < n; x++, e++) data.push(ns[s[e] as number], v[e]);
  }
  return { kind: t.kind, namespaced: true, data };
}

function encodeTimers(t: TimersSnapshot): EncodedTimers {
  const dictionary = new Dictionary();
  const columns = (flat: unknown[]): [Column, Column, Column] => {
    const n = flat.length / 3;
    const keys = new Array<unknown>(n);
    const namespaces = new Array<unknown>(n);
    const times = new Array<unknown>(n);
    for (let i = 0, j = 0; j < n; i += 3, j++) {
      const ns = flat[i + 1];
      keys[j] = flat[i];
      namespaces[j] = dictionary.index(namespaceId(ns), ns);
      times[j] = flat[i + 2];
    }
    return [toColumn(keys), toColumn(namespaces), toColumn(times)];
  };
  const event = columns(t.event);
  const processing = columns(t.processing);
  return { ns: dictionary.values, event, processing };
}

function decodeTimers(t: EncodedTimers): TimersSnapshot {
  const flat = ([k, s, ts]: [Column, Column, Column]): unknown[] => {
    const keys = fromColumn(k);
    const namespaces = fromColumn(s);
    const times = fromColumn(ts);
    const out = new Array<unknown>(3 * keys.length);
    for (let j = 0, i = 0; j < keys.length; j++, i += 3) {
      out[i] = keys[j];
      out[i + 1] = t.ns[namespaces[j] as number];
      out[i + 2] = times[j];
    }
    return out;
  };
  return { event: flat(t.event), processing: flat(t.processing) };
}

/** What tells timer namespaces apart: a window's `namespace()` (equal windows may be different objects). */
function namespaceId(ns: unknown): unknown {
  return typeof ns === 'object' &&
    ns !== null &&
    typeof (ns as { namespace?: unknown }).namespace === 'function'
    ? (ns as { namespace(): unknown }).namespace()
    : ns;
}

/** Distinct values, each with its index (by an identity the caller chooses). */
class Dictionary {
  readonly values: unknown[] = [];
  private readonly indexes = new Map<unknown, number>();
  private lastId: unknown = undefined;
  private lastIndex = -1;
  index(id: unknown, value: unknown): number {
    // NOTE: entries in a row usually share a namespace (a window): skip the lookup then.
    if (this.lastIndex >= 0 && id === this.lastId) return this.lastIndex;
    let x = this.indexes.get(id);
    if (x === undefined) {
      x = this.values.length;
      this.indexes.set(id, x);
      this.values.push(value);
    }
    this.lastId = id;
    this.lastIndex = x;
    return x;
  }
}

/**
 * A column of `values`: when they are all numbers, the narrowest typed array that holds them
 * exactly (unsigned integers in 1, 2 or 4 bytes, else 8-byte floats); else the array itself.
 */
function toColumn(values: unknown[]): Column {
  let max = 0;
  let integers = true;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (typeof x !== 'number') return values;
    // NOTE: -0 is not an unsigned integer (it would come back as 0); NaN and fractions are not either.
    if (integers) {
      if (x >>> 0 !== x || Object.is(x, -0)) integers = false;
      else if (x > max) max = x;
    }
  }
  const out = !integers
    ? new Float64Array(values.length)
    : max < 0x100
      ? new Uint8Array(values.length)
      : max < 0x10000
        ? new Uint16Array(values.length)
        : new Uint32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] as number;
  return out;
}

function fromColumn(c: Column): unknown[] {
  if (Array.isArray(c)) return c;
  const out = new Array<unknown>(c.length);
  for (let i = 0; i < c.length; i++) out[i] = c[i];
  return out;
}
