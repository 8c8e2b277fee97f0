// The benchmark's hand loops (bench/nexmark/baselines.ts) on the hand-made inputs of
// test/helpers/nexmark-corners.ts: the loops read their events from the generator, which is
// replaced here by the corner events; their results must digest as the batch computation's do.
import { describe, expect, test, vi } from 'vitest';
import { baselines, checkers, LastPerKeyChecker } from '../../bench/nexmark/baselines.js';
import { DEFAULT_CONFIG, type Event } from '../../examples/nexmark/generator.js';
import type { Q4Result } from '../../examples/nexmark/q4.js';
import { Q4_CORNER, Q7_CORNER, Q8_CORNER, Q11_CORNER, TIED_BIDS } from '../helpers/nexmark-corners.js';
import * as ref from '../helpers/nexmark-reference.js';

const input = vi.hoisted(() => ({ events: [] as readonly Event[] }));

vi.mock('../../examples/nexmark/generator.js', async (importOriginal) => {
  const generator = await importOriginal<typeof import('../../examples/nexmark/generator.js')>();
  return { ...generator, nexmarkEvent: (n: number) => input.events[n]! };
});

describe('the hand loops on hand-made input', () => {
  test('q7: bids at exactly a window end join that window', () => {
    input.events = Q7_CORNER.bids;
    const loop = checkers.q7();
    baselines.q7(input.events.length, DEFAULT_CONFIG, loop);
    const expected = checkers.q7();
    for (const r of ref.q7(input.events)) expected.add(r);
    expect(loop.records).toBe(Q7_CORNER.expected.length);
    expect(loop.digest()).toBe(expected.digest());
  });

  test('q8: one row per distinct (id, name) and window', () => {
    input.events = Q8_CORNER.events;
    const loop = checkers.q8();
    baselines.q8(input.events.length, DEFAULT_CONFIG, loop);
    const expected = checkers.q8();
    for (const r of ref.q8(input.events)) expected.add(r);
    expect(loop.records).toBe(Q8_CORNER.expected.length);
    expect(loop.digest()).toBe(expected.digest());
  });

  test("q4: bids at exactly an auction's start and expiry count, before or after their auction", () => {
    input.events = Q4_CORNER.events;
    // Every update, besides the last per category that the checker keeps.
    const updates: Q4Result[] = [];
    const loop = new (class extends LastPerKeyChecker<Q4Result> {
      override add(r: Q4Result): void {
        super.add(r);
        updates.push(r);
      }
    })((r) => r.category);
    baselines.q4(input.events.length, DEFAULT_CONFIG, loop);
    expect(updates.length).toBe(Q4_CORNER.expected.length);
    const last = new Map(updates.map((r) => [r.category, r]));
    expect(ref.canonicalJson([...last.values()])).toEqual(ref.canonicalJson(ref.q4(input.events)));
  });

  test('q11: bids exactly the gap apart are one session', () => {
    input.events = Q11_CORNER.events;
    const loop = checkers.q11();
    baselines.q11(input.events.length, DEFAULT_CONFIG, loop);
    const expected = checkers.q11();
    for (const r of ref.q11(input.events)) expected.add(r);
    expect(loop.records).toBe(Q11_CORNER.expected.length);
    expect(loop.digest()).toBe(expected.digest());
  });

  test('q5 and q7: every tie at the highest count or price is reported', () => {
    input.events = TIED_BIDS;
    const q5 = checkers.q5();
    baselines.q5(input.events.length, DEFAULT_CONFIG, q5);
    const q5Expected = checkers.q5();
    for (const r of ref.q5(input.events)) q5Expected.add(r);
    expect(q5.digest()).toBe(q5Expected.digest());
    const q7 = checkers.q7();
    baselines.q7(input.events.length, DEFAULT_CONFIG, q7);
    const q7Expected = checkers.q7();
    for (const r of ref.q7(input.events)) q7Expected.add(r);
    expect(q7.digest()).toBe(q7Expected.digest());
  });
});
