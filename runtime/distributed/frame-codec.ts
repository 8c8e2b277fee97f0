/**
 * How a batch of channel events (a frame) crosses to another thread or process. Event kinds and
 * times go as typed arrays (transferred, not copied, between threads). Records go in columns when
 * they all have one flat shape: a plain object of numbers, strings and booleans (a Nexmark bid, a
 * `{ key, count }`), or a bare number or string. Their numbers fill one `Float64Array`, their
 * strings are concatenated into one string with a length per value (a rope that `postMessage`
 * flattens natively: cheaper than `join`), and the other side rebuilds each
 * record with a function compiled for that shape: about a quarter of what msgpackr costs for a
 * bid (measured with `bench/channels.ts`). Any other frame (nested values, mixed shapes, Maps,
 * bigints, null fields ...) is encoded with msgpackr, as before.
 *
 * NOTE: the shape check is strict: the prototype, every key in order, and every value's type;
 * a record that differs in any of them sends its frame through msgpackr, so no property, key
 * order or type is ever lost. Decoded strings are copies of their own (see `ownString`), so a
 * record kept in state does not keep its whole frame alive.
 */
import { Packr } from 'msgpackr';
import { RECORD } from '../task/channel.js';

const packr = new Packr({ useRecords: true, moreTypes: true, mapsAsObjects: false });

/** Records of one shape, in columns. */
export interface RecordColumns {
  /** The shape: for objects, `key:type` per field in key order (n: number, s: string, b: boolean); or `=n` / `=s`. */
  shape: string;
  n: number;
  /** Numeric (and boolean) fields, record by record. */
  num: Float64Array;
  /** Lengths of the string fields, record by record. */
  lens: Uint32Array;
  /** The string fields, joined. */
  str: string;
}

/** A batch of events of one channel, as it crosses. */
export interface Frame {
  kinds: Uint8Array;
  times: Float64Array;
  /** The values of the events that are not records (barrier ids, idleness), in order. */
  others: unknown[];
  /** The records' values: columns, or msgpackr-encoded. */
  records: RecordColumns | Uint8Array;
}

interface ShapeCodec {
  shape: string;
  /** Fills columns from `values`; undefined if one of them has another shape. */
  encode(values: readonly unknown[]): RecordColumns | undefined;
  /** Rebuilds the records. */
  decode(c: RecordColumns): unknown[];
}

/** A string of its own: V8 keeps a slice of 13 characters or more as a view of its parent. */
export function ownString(s: string): string {
  return s.length < 13 ? s : ` ${s}`.slice(1);
}

/**
 * A number read from a `Float64Array`, as a small integer when it is one (not -0).
 *
 * NOTE: V8 tracks how each field of an object shape is represented: records that the producer
 * made with small-integer fields and that come back with the same fields as doubles change the
 * shape's representation for every record of that shape in the thread (boxed doubles, map
 * migrations, deoptimized code).
 */
export function smallInteger(x: number): number {
  const i = x | 0;
  return i === x && (i !== 0 || 1 / x > 0) ? i : x;
}

const TYPE: Record<string, string> = { number: 'n', string: 's', boolean: 'b' };

/** The shape of a record that can go in columns, or undefined. */
function shapeOf(v: unknown): { shape: string; keys: string[]; types: string[] } | undefined {
  const t = typeof v;
  if (t === 'number') return { shape: '=n', keys: [], types: ['n'] };
  if (t === 'string') return { shape: '=s', keys: [], types: ['s'] };
  if (t !== 'object' || v === null || Array.isArray(v)) return undefined;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return undefined;
  const keys: string[] = [];
  const types: string[] = [];
  for (const k in v as Record<string, unknown>) {
    const c = TYPE[typeof (v as Record<string, unknown>)[k]];
    // NOTE: `__proto__` in an object literal would set the prototype: such records go by msgpackr.
    if (c === undefined || k === '__proto__') return undefined;
    keys.push(k);
    types.push(c);
  }
  if (keys.length === 0 || keys.length > 64) return undefined;
  return { shape: keys.map((k, i) => `${JSON.stringify(k)}:${types[i]}`).join(','), keys, types };
}

let codeGeneration = true;
const codecs = new Map<string, ShapeCodec>();

/** The codec of a shape, compiled once per shape and process. */
function codecFor(shape: string, keys: string[], types: string[]): ShapeCodec {
  let c = codecs.get(shape);
  if (c === undefined) {
    c = codeGeneration ? compile(shape, keys, types) : undefined;
    c ??= interpreted(shape, keys, types);
    codecs.set(shape, c);
  }
  return c;
}

/** A codec compiled for the shape: property access by constant names, one object literal. */
function compile(shape: string, keys: string[], types: string[]): ShapeCodec | undefined {
  const nums = types.filter((t) => t !== 's').length;
  const strs = types.length - nums;
  const k = (i: number) => JSON.stringify(keys[i]);
  let enc: string;
  let dec: string;
  if (shape === '=n') {
    enc =
      'for (let i = 0; i < n; i++) { const v = values[i]; if (typeof v !== "number") return undefined; num[i] = v; }';
    dec = 'for (let i = 0; i < n; i++) out[i] = small(num[i]);';
  } else if (shape === '=s') {
    enc =
      'for (let i = 0; i < n; i++) { const v = values[i]; if (typeof v !== "string") return undefined; str += v; lens[i] = v.length; }';
    dec =
      'let p = 0; for (let i = 0; i < n; i++) { const e = p + lens[i]; out[i] = own(str.slice(p, e)); p = e; }';
  } else {
    const check = [
      'const proto = Object.getPrototypeOf(r); if (proto !== Object.prototype && proto !== null) return undefined;',
      'let j = 0; for (const key in r) { if (key !== K[j]) return undefined; j++; } if (j !== K.length) return undefined;',
    ];
    const fill: string[] = [];
    const read: string[] = [];
    const fields: string[] = [];
    let ni = 0;
    let si = 0;
    types.forEach((t, i) => {
      if (t === 's') {
        fill.push(
          `{ const v = r[${k(i)}]; if (typeof v !== "string") return undefined; str += v; lens[i * ${strs} + ${si}] = v.length; }`,
        );
        read.push(
          `const e${i} = p + lens[i * ${strs} + ${si}]; const v${i} = own(str.slice(p, e${i})); p = e${i};`,
        );
        si++;
      } else {
        const tn = t === 'n' ? 'number' : 'boolean';
        fill.push(
          `{ const v = r[${k(i)}]; if (typeof v !== "${tn}") return undefined; num[i * ${nums} + ${ni}] = ${t === 'b' ? 'v ? 1 : 0' : 'v'}; }`,
        );
        read.push(
          t === 'b'
            ? `const v${i} = num[i * ${nums} + ${ni}] !== 0;`
            : `const v${i} = small(num[i * ${nums} + ${ni}]);`,
        );
        ni++;
      }
      fields.push(`${k(i)}: v${i}`);
    });
    enc = `for (let i = 0; i < n; i++) { const r = values[i]; if (typeof r !== "object" || r === null) return undefined; ${check.join(' ')} ${fill.join(' ')} }`;
    dec = `let p = 0; for (let i = 0; i < n; i++) { ${read.join(' ')} out[i] = { ${fields.join(', ')} }; }`;
  }
  const numCols = shape === '=n' ? 1 : nums;
  const strCols = shape === '=s' ? 1 : strs;
  try {
    const encode = new Function(
      'K',
      'shape',
      `'use strict'; return function encode(values) { const n = values.length; const num = new Float64Array(n * ${numCols}); const lens = new Uint32Array(n * ${strCols}); let str = ''; ${enc} return { shape, n, num, lens, str }; };`,
    )(keys, shape) as ShapeCodec['encode'];
    const decode = new Function(
      'own',
      'small',
      `'use strict'; return function decode(c) { const n = c.n, num = c.num, lens = c.lens, str = c.str; const out = new Array(n); ${dec} return out; };`,
    )(ownString, smallInteger) as ShapeCodec['decode'];
    return { shape, encode, decode };
  } catch {
    // Code generation from strings is disallowed (--disallow-code-generation-from-strings).
    codeGeneration = false;
    return undefined;
  }
}

/** The same codec without generated code (slower: property access by variable names). */
function interpreted(shape: string, keys: string[], types: string[]): ShapeCodec {
  const isRecord = !shape.startsWith('=');
  const nums = isRecord ? types.filter((t) => t !== 's').length : shape === '=n' ? 1 : 0;
  const strs = isRecord ? types.length - nums : shape === '=s' ? 1 : 0;
  return {
    shape,
    encode(values) {
      const n = values.length;
      const num = new Float64Array(n * nums);
      const lens = new Uint32Array(n * strs);
      const parts = new Array<string>(n * strs);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (!isRecord) {
          if (typeof v !== (shape === '=n' ? 'number' : 'string')) return undefined;
          if (shape === '=n') num[i] = v as number;
          else {
            parts[i] = v as string;
            lens[i] = (v as string).length;
          }
          continue;
        }
        const s = shapeOf(v);
        if (s === undefined || s.shape !== shape) return undefined;
        let ni = 0;
        let si = 0;
        for (let f = 0; f < keys.length; f++) {
          const x = (v as Record<string, unknown>)[keys[f]!];
          if (types[f] === 's') {
            parts[i * strs + si] = x as string;
            lens[i * strs + si++] = (x as string).length;
          } else num[i * nums + ni++] = types[f] === 'b' ? (x ? 1 : 0) : (x as number);
        }
      }
      return { shape, n, num, lens, str: parts.join('') };
    },
    decode(c) {
      const out = new Array<unknown>(c.n);
      let p = 0;
      for (let i = 0; i < c.n; i++) {
        if (!isRecord) {
          if (shape === '=n') out[i] = smallInteger(c.num[i]!);
          else {
            const e = p + c.lens[i]!;
            out[i] = ownString(c.str.slice(p, e));
            p = e;
          }
          continue;
        }
        const r: Record<string, unknown> = {};
        let ni = 0;
        let si = 0;
        for (let f = 0; f < keys.length; f++) {
          if (types[f] === 's') {
            const e = p + c.lens[i * strs + si++]!;
            r[keys[f]!] = ownString(c.str.slice(p, e));
            p = e;
          } else {
            const x = c.num[i * nums + ni++]!;
            r[keys[f]!] = types[f] === 'b' ? x !== 0 : smallInteger(x);
          }
        }
        out[i] = r;
      }
      return out;
    },
  };
}

/**
 * Encodes a frame's events; `transfer` lists the buffers a `postMessage` can move instead of
 * copying (the frame's arrays are not used after).
 */
export function encodeFrame(
  kinds: readonly number[],
  values: readonly unknown[],
  times: readonly number[],
): { frame: Frame; transfer: ArrayBuffer[] } {
  const records: unknown[] = [];
  const others: unknown[] = [];
  for (let i = 0; i < kinds.length; i++) {
    if (kinds[i] === RECORD) records.push(values[i]);
    else others.push(values[i]);
  }
  const frame: Frame = {
    kinds: Uint8Array.from(kinds),
    times: Float64Array.from(times),
    others,
    records: encodeRecords(records),
  };
  const transfer = [frame.kinds.buffer as ArrayBuffer, frame.times.buffer as ArrayBuffer];
  if (!(frame.records instanceof Uint8Array))
    transfer.push(frame.records.num.buffer as ArrayBuffer, frame.records.lens.buffer as ArrayBuffer);
  return { frame, transfer };
}

function encodeRecords(records: unknown[]): RecordColumns | Uint8Array {
  if (records.length > 0) {
    const s = shapeOf(records[0]);
    if (s !== undefined) {
      const cols = codecFor(s.shape, s.keys, s.types).encode(records);
      if (cols !== undefined) return cols;
    }
  }
  return packr.pack(records);
}

/** The events of a frame, in order, to `push(kind, value, time)`. */
export function decodeFrame(frame: Frame, push: (kind: number, value: unknown, time: number) => void): void {
  const { kinds, times, others } = frame;
  let records: unknown[];
  const r = frame.records;
  if (r instanceof Uint8Array) records = packr.unpack(r) as unknown[];
  else {
    let c = codecs.get(r.shape);
    if (c === undefined) {
      const { keys, types } = parseShape(r.shape);
      c = codecFor(r.shape, keys, types);
    }
    records = c.decode(r);
  }
  let ri = 0;
  let oi = 0;
  for (let i = 0; i < kinds.length; i++) {
    const k = kinds[i]!;
    push(k, k === RECORD ? records[ri++] : others[oi++], times[i]!);
  }
}

/** Keys and types of a shape string (as `shapeOf` makes it). */
function parseShape(shape: string): { keys: string[]; types: string[] } {
  if (shape === '=n') return { keys: [], types: ['n'] };
  if (shape === '=s') return { keys: [], types: ['s'] };
  const keys: string[] = [];
  const types: string[] = [];
  // `"key":t,"key":t` — the keys are JSON strings, so split after each closing `":t`.
  for (const m of shape.matchAll(/("(?:[^"\\]|\\.)*"):([nsb])(?:,|$)/g)) {
    keys.push(JSON.parse(m[1]!) as string);
    types.push(m[2]!);
  }
  return { keys, types };
}
