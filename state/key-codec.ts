/**
 * Canonical in-memory form of keys, used as JavaScript `Map` keys in state tables.
 *
 * NOTE: primitives are their own canonical form (a `Map` already compares them by value, and
 * `1`, `'1'`, `1n` stay distinct). Arrays are not compared by value, so they are encoded as a
 * string that starts with U+0001 (a string key starting with that character would collide; it is
 * reserved). The encoding is decoded back to the array when keys are listed.
 */
import { InvalidRecordError } from './errors.js';
import type { Key } from './hash.js';

/** The canonical form of a key: a primitive. */
export type MapKey = string | number | bigint | boolean;

const ARRAY_MARK = '\u0001';

/** The canonical `Map` key of a key. */
export function canonicalKey(key: Key): MapKey {
  return Array.isArray(key) ? ARRAY_MARK + encodeArray(key) : (key as MapKey);
}

/** The key whose canonical form is `mapKey`. */
export function decodeKey(mapKey: MapKey): Key {
  if (typeof mapKey === 'string' && mapKey.charCodeAt(0) === 1)
    return decodeValue(JSON.parse(mapKey.slice(1)));
  return mapKey;
}

function encodeArray(key: readonly Key[]): string {
  return JSON.stringify(key.map(encodeValue));
}

type Encoded = string | number | boolean | Encoded[] | { n: string } | { f: string };

function encodeValue(v: Key): Encoded {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isFinite(v) ? (Object.is(v, -0) ? 0 : v) : { f: String(v) };
    case 'bigint':
      return { n: v.toString() };
    default:
      if (!Array.isArray(v)) throw new InvalidRecordError(`not a valid key element: ${String(v)}`);
      return v.map(encodeValue);
  }
}

function decodeValue(e: Encoded): Key {
  if (Array.isArray(e)) return e.map(decodeValue);
  if (typeof e === 'object') return 'n' in e ? BigInt(e.n) : Number(e.f);
  return e;
}

/** True if `value` is a valid key (primitive or nested array of primitives). */
export function isKey(value: unknown): value is Key {
  const t = typeof value;
  if (t === 'string' || t === 'number' || t === 'bigint' || t === 'boolean') return true;
  return Array.isArray(value) && value.every(isKey);
}
