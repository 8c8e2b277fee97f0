/**
 * Record writers: the producer side of a network edge. Each picks the channel(s) of a record by the
 * edge's partitioning; watermarks, idleness, barriers and end of partition go to every channel.
 */
import type { PartitionerSpec } from '../../operators/transformation.js';
import { UserFunctionError } from '../../state/errors.js';
import { describeValue, type Key } from '../../state/hash.js';
import { keyGroupFor, subtaskForKeyGroup, unsignedMod } from '../../state/key-groups.js';
import { RECORD } from './channel.js';

/** The sending end of a channel: a local ring, or a batch sent to another thread or process. */
export interface OutChannel {
  push(kind: number, value: unknown, time: number): void;
}

/** Sends records of one producer subtask over one edge. */
export abstract class RecordWriter {
  constructor(readonly channels: readonly OutChannel[]) {}
  abstract emit(value: unknown, timestamp: number): void;
  /** Sends a non-record event to every channel. */
  broadcastEvent(kind: number, value: unknown, time: number): void {
    for (const c of this.channels) c.push(kind, value, time);
  }
}

class SingleWriter extends RecordWriter {
  private readonly channel: OutChannel;
  constructor(channels: readonly OutChannel[]) {
    super(channels);
    this.channel = channels[0]!;
  }
  emit(value: unknown, timestamp: number): void {
    this.channel.push(RECORD, value, timestamp);
  }
}

class RoundRobinWriter extends RecordWriter {
  private next: number;
  constructor(channels: readonly OutChannel[], start: number) {
    super(channels);
    this.next = start % channels.length;
  }
  emit(value: unknown, timestamp: number): void {
    this.channels[this.next]!.push(RECORD, value, timestamp);
    if (++this.next === this.channels.length) this.next = 0;
  }
}

class BroadcastWriter extends RecordWriter {
  emit(value: unknown, timestamp: number): void {
    for (const c of this.channels) c.push(RECORD, value, timestamp);
  }
}

class ShuffleWriter extends RecordWriter {
  private state: number;
  constructor(channels: readonly OutChannel[], seed: number) {
    super(channels);
    this.state = (seed * 0x9e3779b1) | 1;
  }
  emit(value: unknown, timestamp: number): void {
    // xorshift32: seeded per subtask, so a run is repeatable.
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x;
    this.channels[unsignedMod(x, this.channels.length)]!.push(RECORD, value, timestamp);
  }
}

class HashWriter extends RecordWriter {
  constructor(
    channels: readonly OutChannel[],
    private readonly keySelector: (value: unknown) => Key,
    private readonly maxParallelism: number,
    private readonly describe: () => string,
  ) {
    super(channels);
    this.single = channels.length === 1 ? channels[0] : undefined;
  }
  private readonly single: OutChannel | undefined;
  emit(value: unknown, timestamp: number): void {
    // NOTE: with one consumer there is nothing to route: the keyed operator computes the key (and
    // rejects a non-key, naming itself and the record) when the record arrives.
    if (this.single !== undefined) {
      this.single.push(RECORD, value, timestamp);
      return;
    }
    let key: Key;
    try {
      key = this.keySelector(value);
    } catch (e) {
      throw new UserFunctionError(
        `${this.describe()}: key selector threw on record ${describeValue(value)}: ${e instanceof Error ? e.message : String(e)}`,
        {},
        describeValue(value),
        e,
      );
    }
    let group: number;
    try {
      group = keyGroupFor(key, this.maxParallelism);
    } catch (e) {
      throw new UserFunctionError(
        `${this.describe()}: key selector returned ${describeValue(key)} for record ${describeValue(value)}, which is not a valid key (use strings, numbers, bigints, booleans or arrays of them)`,
        {},
        describeValue(value),
        e,
      );
    }
    this.channels[subtaskForKeyGroup(group, this.channels.length, this.maxParallelism)]!.push(
      RECORD,
      value,
      timestamp,
    );
  }
}

/**
 * The writer of one edge for producer subtask `subtaskIndex`. `channels` are the channels this
 * producer has on the edge, indexed by consumer subtask for all-to-all edges.
 */
export function createWriter(
  partitioner: PartitionerSpec,
  channels: readonly OutChannel[],
  subtaskIndex: number,
  targetMaxParallelism: number,
  describe: () => string,
): RecordWriter {
  switch (partitioner.kind) {
    case 'forward':
    case 'global':
      // NOTE: global edges connect to every consumer (so each gets watermarks and end of input);
      // records only go to the first.
      return new SingleWriter(channels);
    case 'rebalance':
    case 'rescale':
      return channels.length === 1
        ? new SingleWriter(channels)
        : new RoundRobinWriter(channels, subtaskIndex);
    case 'broadcast':
      return new BroadcastWriter(channels);
    case 'shuffle':
      return new ShuffleWriter(channels, subtaskIndex + 1);
    case 'hash':
      return new HashWriter(channels, partitioner.keySelector, targetMaxParallelism, describe);
  }
}

/**
 * Which consumer subtasks producer subtask `i` of `p` connects to on an edge with this partitioning
 * towards `q` consumer subtasks.
 */
export function connectedSubtasks(partitioner: PartitionerSpec, i: number, p: number, q: number): number[] {
  switch (partitioner.kind) {
    case 'forward':
      return [i];
    case 'rescale': {
      // Pointwise, as Flink: each producer feeds a contiguous range of consumers (or shares one).
      if (p >= q) return [Math.floor((i * q) / p)];
      const from = Math.floor((i * q) / p);
      const to = Math.floor(((i + 1) * q) / p);
      return Array.from({ length: to - from }, (_x, k) => from + k);
    }
    default:
      return Array.from({ length: q }, (_x, k) => k);
  }
}
