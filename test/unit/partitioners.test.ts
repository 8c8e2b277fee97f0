import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { PartitionerSpec } from '../../operators/transformation.js';
import { Channel, InputGate, OutputGate, RECORD, WATERMARK } from '../../runtime/task/channel.js';
import { connectedSubtasks, createWriter } from '../../runtime/task/writers.js';
import { keyGroupFor, subtaskForKeyGroup } from '../../state/key-groups.js';

/** Channels from one producer subtask to its connected consumers, and a writer over them. */
function wire(partitioner: PartitionerSpec, i: number, p: number, q: number, maxP = 128) {
  const to = connectedSubtasks(partitioner, i, p, q);
  const producer = new OutputGate();
  const channels = to.map((j) => new Channel(1024, producer, new InputGate(), 1, `->${j}`));
  const writer = createWriter(partitioner, channels, i, maxP, () => 'test');
  const drain = (c: Channel) => {
    const out: unknown[] = [];
    while (c.size > 0) if (c.pop() === RECORD) out.push(c.lastValue);
    return out;
  };
  return { to, channels, writer, drain };
}

describe('partitioners', () => {
  test('forward sends to the subtask with the same index', () => {
    expect(connectedSubtasks({ kind: 'forward' }, 2, 4, 4)).toEqual([2]);
  });

  test('rebalance is round-robin over all consumers', () => {
    const { channels, writer, drain } = wire({ kind: 'rebalance' }, 0, 1, 3);
    for (let i = 0; i < 9; i++) writer.emit(i, 0);
    expect(channels.map(drain)).toEqual([
      [0, 3, 6],
      [1, 4, 7],
      [2, 5, 8],
    ]);
  });

  test('rescale connects each producer to a local subset (pointwise, as Flink)', () => {
    // 2 producers -> 4 consumers: 0 -> {0,1}, 1 -> {2,3}
    expect(connectedSubtasks({ kind: 'rescale' }, 0, 2, 4)).toEqual([0, 1]);
    expect(connectedSubtasks({ kind: 'rescale' }, 1, 2, 4)).toEqual([2, 3]);
    // 4 producers -> 2 consumers: {0,1} -> 0, {2,3} -> 1
    expect([0, 1, 2, 3].map((i) => connectedSubtasks({ kind: 'rescale' }, i, 4, 2))).toEqual([
      [0],
      [0],
      [1],
      [1],
    ]);
    // every consumer has at least one producer, for any p and q
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 16 }), (p, q) => {
        const covered = new Set<number>();
        for (let i = 0; i < p; i++)
          for (const j of connectedSubtasks({ kind: 'rescale' }, i, p, q)) covered.add(j);
        expect(covered.size).toBe(q);
      }),
    );
  });

  test('broadcast sends every record to every consumer', () => {
    const { channels, writer, drain } = wire({ kind: 'broadcast' }, 0, 1, 3);
    writer.emit('x', 0);
    writer.emit('y', 0);
    expect(channels.map(drain)).toEqual([
      ['x', 'y'],
      ['x', 'y'],
      ['x', 'y'],
    ]);
  });

  test('global sends every record to consumer 0, and events to all', () => {
    const { channels, writer, drain } = wire({ kind: 'global' }, 3, 4, 3);
    writer.emit('x', 0);
    writer.broadcastEvent(WATERMARK, undefined, 5);
    expect(channels.map((c) => c.size)).toEqual([2, 1, 1]);
    expect(channels.map(drain)).toEqual([['x'], [], []]);
  });

  test('shuffle is repeatable per producer and reaches every consumer', () => {
    const a = wire({ kind: 'shuffle' }, 1, 2, 4);
    const b = wire({ kind: 'shuffle' }, 1, 2, 4);
    for (let i = 0; i < 400; i++) {
      a.writer.emit(i, 0);
      b.writer.emit(i, 0);
    }
    const da = a.channels.map(a.drain);
    expect(da).toEqual(b.channels.map(b.drain));
    for (const c of da) expect(c.length).toBeGreaterThan(50);
  });

  test('hash sends each key to the subtask owning its key group', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string(), { maxLength: 50 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 8, max: 300 }),
        (keys, q, maxP) => {
          const { channels, writer, drain } = wire(
            { kind: 'hash', keySelector: (v) => v as string },
            0,
            1,
            q,
            maxP,
          );
          for (const k of keys) writer.emit(k, 0);
          channels.forEach((c, j) => {
            for (const k of drain(c))
              expect(subtaskForKeyGroup(keyGroupFor(k as string, maxP), q, maxP)).toBe(j);
          });
        },
      ),
    );
  });

  test('a key selector that throws or returns a non-key fails with the record', () => {
    const bad = wire({ kind: 'hash', keySelector: () => ({}) as never }, 0, 1, 2);
    expect(() => bad.writer.emit({ id: 7 }, 0)).toThrow(/not a valid key/);
    const throwing = wire(
      {
        kind: 'hash',
        keySelector: () => {
          throw new Error('boom');
        },
      },
      0,
      1,
      2,
    );
    expect(() => throwing.writer.emit({ id: 7 }, 0)).toThrow(/key selector threw on record \{"id":7\}: boom/);
  });

  test('watermarks and other events go to every channel', () => {
    const { channels, writer } = wire({ kind: 'rebalance' }, 0, 1, 3);
    writer.broadcastEvent(WATERMARK, undefined, 42);
    for (const c of channels) {
      expect(c.pop()).toBe(WATERMARK);
      expect(c.lastTime).toBe(42);
    }
  });
});

describe('channel', () => {
  test('is a FIFO that grows past its capacity and tracks fullness for its producer', () => {
    const producer = new OutputGate();
    const consumer = new InputGate();
    const c = new Channel(4, producer, consumer, 1, 'c');
    for (let i = 0; i < 3; i++) c.push(RECORD, i, i);
    expect(producer.full).toBe(0);
    c.push(RECORD, 3, 3);
    expect(producer.full).toBe(1);
    for (let i = 4; i < 40; i++) c.push(RECORD, i, i);
    expect(consumer.queued).toBe(40);
    const got: unknown[] = [];
    while (c.size > 0) {
      c.pop();
      got.push(c.lastValue);
    }
    expect(got).toEqual(Array.from({ length: 40 }, (_x, i) => i));
    expect(producer.full).toBe(0);
    expect(consumer.queued).toBe(0);
  });
});
