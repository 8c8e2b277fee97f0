// The benchmark's hand loops (bench/nexmark/baselines.ts) on the hand-made inputs of
// test/helpers/nexmark-corners.ts: the loops read their events from the generator, which is
// replaced here by the corner events; their results must digest as the batch computation's do.
import { describe, expect, test, vi } from 'vitest';
import { baselines, checkers } from '../../bench/nexmark/baselines.js';
import { DEFAULT_CONFIG, type Event } from '../../examples/nexmark/generator.js';
import { Q7_CORNER, Q8_CORNER } from '../helpers/nexmark-corners.js';
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
});
