import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { hashKey } from '../../state/hash.js';
import {
  checkParallelism,
  defaultMaxParallelism,
  KeyGroupRange,
  keyGroupFor,
  subtaskForKey,
  subtaskForKeyGroup,
  unsignedMod,
} from '../../state/key-groups.js';

describe('stable key hash', () => {
  test('is deterministic and distinguishes key kinds', () => {
    expect(hashKey('hello')).toBe(hashKey('hello'));
    const forms = [hashKey(1), hashKey('1'), hashKey(1n), hashKey([1]), hashKey(true), hashKey(1.5)];
    expect(new Set(forms).size).toBe(forms.length);
  });

  test('strings and numbers hash as textbook murmur3_32 of their UTF-16LE / little-endian bytes', () => {
    // Checked against a byte-wise reference implementation: the key-group assignment (and with it
    // every stored checkpoint) depends on this function never changing.
    const SEED_STRING = 0x2f1a9c3b;
    const SEED_INT = 0x5bd1e995;
    const SEED_FLOAT = 0x6a09e667;
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const bytes = new Uint8Array(s.length * 2);
        for (let i = 0; i < s.length; i++) {
          bytes[2 * i] = s.charCodeAt(i) & 0xff;
          bytes[2 * i + 1] = s.charCodeAt(i) >>> 8;
        }
        expect(hashKey(s)).toBe(murmur3Reference(bytes, SEED_STRING));
      }),
    );
    fc.assert(
      fc.property(fc.integer(), (n) => {
        const b = new Uint8Array(new Int32Array([n]).buffer);
        expect(hashKey(n)).toBe(murmur3Reference(b, SEED_INT));
      }),
    );
    fc.assert(
      fc.property(
        fc.double({ noNaN: true }).filter((x) => (x | 0) !== x),
        (x) => {
          const b = new Uint8Array(new Float64Array([x]).buffer);
          expect(hashKey(x)).toBe(murmur3Reference(b, SEED_FLOAT));
        },
      ),
    );
    expect(murmur3Reference(new TextEncoder().encode('hello'), 0) >>> 0).toBe(0x248bfa47); // published test vector
  });

  test('-0 hashes as 0 and NaN is normalised', () => {
    expect(hashKey(-0)).toBe(hashKey(0));
    expect(hashKey(Number.NaN)).toBe(hashKey(0 / 0));
  });

  test('spreads keys evenly over key groups', () => {
    const counts = new Array(128).fill(0);
    for (let i = 0; i < 128_000; i++) counts[keyGroupFor(`user-${i}`, 128)]++;
    for (const c of counts) {
      expect(c).toBeGreaterThan(800);
      expect(c).toBeLessThan(1200);
    }
    const ints = new Array(128).fill(0);
    for (let i = 0; i < 128_000; i++) ints[keyGroupFor(i, 128)]++;
    for (const c of ints) {
      expect(c).toBeGreaterThan(800);
      expect(c).toBeLessThan(1200);
    }
  });

  test('rejects values that are not keys', () => {
    expect(() => hashKey({} as never)).toThrow(/not a valid key/);
  });
});

describe('key groups', () => {
  test("a key's group is its hash, as an unsigned number, modulo maxParallelism (in int32 arithmetic)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 32768 }),
        (h, m) => {
          expect(unsignedMod(h, m)).toBe((h >>> 0) % m);
        },
      ),
      { numRuns: 2000 },
    );
    for (const h of [0, 1, -1, 2 ** 31 - 1, -(2 ** 31)])
      for (const m of [1, 2, 3, 127, 128, 32767, 32768]) expect(unsignedMod(h, m)).toBe((h >>> 0) % m);
    for (const key of ['a', 7, -3, 1.5, 2n ** 40n, [1, 'x']])
      expect(keyGroupFor(key, 128)).toBe((hashKey(key) >>> 0) % 128);
  });

  test('Flink assignment: key group g goes to floor(g * p / maxP)', () => {
    expect(subtaskForKeyGroup(0, 4, 128)).toBe(0);
    expect(subtaskForKeyGroup(31, 4, 128)).toBe(0);
    expect(subtaskForKeyGroup(32, 4, 128)).toBe(1);
    expect(subtaskForKeyGroup(127, 4, 128)).toBe(3);
    expect(subtaskForKeyGroup(127, 3, 128)).toBe(2);
    expect(subtaskForKeyGroup(42, 3, 128)).toBe(0);
    expect(subtaskForKeyGroup(43, 3, 128)).toBe(1);
  });

  test('ranges per subtask partition all key groups and match the assignment', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 512 }), fc.integer({ min: 1, max: 512 }), (a, b) => {
        const p = Math.min(a, b);
        const maxP = Math.max(a, b);
        let next = 0;
        for (let i = 0; i < p; i++) {
          const r = KeyGroupRange.forSubtask(i, p, maxP);
          expect(r.start).toBe(next);
          for (let g = r.start; g <= r.end; g++) expect(subtaskForKeyGroup(g, p, maxP)).toBe(i);
          next = r.end + 1;
        }
        expect(next).toBe(maxP);
      }),
    );
  });

  test('a key always lands on the subtask owning its key group', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.integer(), fc.double(), fc.bigInt()),
        fc.integer({ min: 1, max: 64 }),
        (key, p) => {
          const g = keyGroupFor(key, 128);
          expect(KeyGroupRange.forSubtask(subtaskForKey(key, p, 128), p, 128).contains(g)).toBe(true);
        },
      ),
    );
  });

  test('default max parallelism follows Flink (128 minimum, 1.5x rounded up to a power of two)', () => {
    expect(defaultMaxParallelism(1)).toBe(128);
    expect(defaultMaxParallelism(85)).toBe(128);
    expect(defaultMaxParallelism(86)).toBe(256);
    expect(defaultMaxParallelism(30000)).toBe(32768);
  });

  test('parallelism checks', () => {
    expect(() => checkParallelism(4, 2)).toThrow(/parallelism 4 is greater than maxParallelism 2/);
    expect(() => checkParallelism(1, 40000)).toThrow(/maxParallelism/);
    expect(() => checkParallelism(0, 128)).toThrow(/positive/);
  });
});

/** Textbook murmur3 x86_32 over bytes (independent of the implementation under test). */
function murmur3Reference(data: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const n = data.length;
  const blocks = n >> 2;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  for (let i = 0; i < blocks; i++) {
    let k = data[4 * i]! | (data[4 * i + 1]! << 8) | (data[4 * i + 2]! << 16) | (data[4 * i + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const tail = blocks * 4;
  const rest = n & 3;
  if (rest >= 3) k ^= data[tail + 2]! << 16;
  if (rest >= 2) k ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    k ^= data[tail]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}
