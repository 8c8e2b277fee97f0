/**
 * Stable key hashing: murmur3 (x86, 32-bit) over a canonical encoding of the key.
 *
 * NOTE: the encoding is defined on values, not on their string form, so hashing never builds a
 * string: a string is hashed as its UTF-16 code units (two per 32-bit block), an int32 as one
 * block, any other number as its IEEE-754 bits (NaN normalised, -0 equal to 0), a bigint as its
 * 32-bit limbs, an array as the combination of its elements' hashes. Every kind has its own seed,
 * so `1`, `1n`, `'1'` and `[1]` hash differently. The result is the same on every platform and in
 * every process, which is what makes key groups (and rescaling) possible.
 */
import { InvalidRecordError } from './errors.js';

/** A value usable as a key: primitives and (nested) arrays of them. */
export type Key = string | number | bigint | boolean | readonly Key[];

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

const SEED_STRING = 0x2f1a9c3b;
const SEED_INT = 0x5bd1e995;
const SEED_FLOAT = 0x6a09e667;
const SEED_BIGINT = 0x3c6ef372;
const SEED_TRUE = 0x510e527f;
const SEED_FALSE = 0x1f83d9ab;
const SEED_ARRAY = 0x7b0c4ce1;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

function mixK(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

function mixH(h: number, k: number): number {
  h ^= mixK(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number, lengthBytes: number): number {
  h ^= lengthBytes;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** murmur3 of a string's UTF-16 code units. */
export function hashString(s: string): number {
  let h = SEED_STRING;
  const n = s.length;
  let i = 0;
  for (; i + 1 < n; i += 2) h = mixH(h, s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16));
  if (i < n) h ^= mixK(s.charCodeAt(i));
  return fmix(h, n * 2);
}

/** murmur3 of a number: int32 values as one block, others as their float64 bits. */
export function hashNumber(x: number): number {
  if ((x | 0) === x) return fmix(mixH(SEED_INT, x), 4);
  f64[0] = Number.isNaN(x) ? Number.NaN : x;
  return fmix(mixH(mixH(SEED_FLOAT, u32[0]!), u32[1]!), 8);
}

function hashBigInt(x: bigint): number {
  let h = SEED_BIGINT;
  let n = x < 0n ? -x : x;
  let len = 0;
  do {
    h = mixH(h, Number(n & 0xffffffffn));
    n >>= 32n;
    len += 4;
  } while (n > 0n);
  if (x < 0n) h = mixH(h, 0x80000000);
  return fmix(h, len);
}

/** The stable 32-bit hash of a key (see the module note for the encoding). */
export function hashKey(key: Key): number {
  switch (typeof key) {
    case 'string':
      return hashString(key);
    case 'number':
      return hashNumber(key);
    case 'bigint':
      return hashBigInt(key);
    case 'boolean':
      return fmix(key ? SEED_TRUE : SEED_FALSE, 1);
    default: {
      if (!Array.isArray(key)) throw new InvalidRecordError(`not a valid key: ${describeValue(key)}`);
      let h = SEED_ARRAY;
      for (let i = 0; i < key.length; i++) h = mixH(h, hashKey(key[i] as Key));
      return fmix(h, key.length * 4);
    }
  }
}

/** A short printable form of any value, for error messages. */
export function describeValue(value: unknown, max = 200): string {
  let s: string;
  try {
    s =
      typeof value === 'string'
        ? JSON.stringify(value)
        : typeof value === 'bigint'
          ? `${value}n`
          : typeof value === 'function'
            ? `[function ${value.name || 'anonymous'}]`
            : value === undefined
              ? 'undefined'
              : (JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ??
                String(value));
  } catch {
    s = String(value);
  }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
