/**
 * A channel between two subtasks in one thread: a ring of events (records, watermarks, idleness,
 * barriers, end of partition) in preallocated parallel arrays, so nothing is allocated per record.
 *
 * NOTE: `capacity` is a soft bound. A producer only runs while all its output channels are below
 * capacity (checked between input records, as Flink checks buffer availability), so a channel can
 * exceed it by what one input record fans out to, or one watermark's timers emit (a sliding
 * window's firings, tens of thousands of records); the ring grows for that. Past twice the
 * capacity, the round-robin scheduler has the consumer read the channel at once, from inside the
 * producer's step (see {@link Channel.drain}).
 */

/** Event kinds. */
export const RECORD = 0;
export const WATERMARK = 1;
export const IDLE = 2;
export const BARRIER = 3;
export const END = 4;

/**
 * The consuming side of a task's input channels: the events waiting in all of them. Written by the
 * channels only; the task reads it to know whether it has input.
 */
export class InputGate {
  queued = 0;
}

/**
 * The producing side of a task's output channels: how many are at or above capacity (or out of
 * credit). Written by the channels only; the task reads it to know whether it may emit.
 */
export class OutputGate {
  full = 0;
}

/** A single-producer, single-consumer queue of events between two subtasks. */
export class Channel {
  kinds: Uint8Array;
  values: unknown[];
  times: Float64Array;
  private head = 0;
  private tail = 0;
  size = 0;
  private mask: number;
  /** Set by barrier alignment: the consumer does not read this channel for now. */
  blocked = false;
  /** The consumer has read END from this channel. */
  ended = false;
  /** Index of this channel among the consumer's input channels. */
  index = -1;
  /** The producing vertex and subtask (set by the wiring; for observation). */
  fromVertex = -1;
  fromSubtask = -1;
  /** Records the consumer read from it (a plain increment; sampled by the observer). */
  records = 0;
  /**
   * Past this many events, {@link push} calls {@link drain}: +Infinity (never) unless a scheduler
   * installed a drain.
   */
  drainAt = Number.POSITIVE_INFINITY;
  /**
   * Has the consumer read this channel's backlog now, from inside the producer's step (installed by
   * the round-robin scheduler, see `Scheduler.drain`), then sets {@link drainAt} again.
   *
   * NOTE: the producer cannot stop in the middle of a step (a watermark firing a sliding window's
   * timers for every key emits them all), and in one thread the consumer runs only once the step
   * is over; so the records waited in the channel, long enough to be copied by the young
   * generation's collections and moved to the old one, where they died (q5: 130 000 window
   * results at a time, a fifth lower throughput). Read at once, they die young. Flink's task
   * threads get the same from bounded network buffers: a producer waits for the consumer.
   */
  drain: ((channel: Channel) => void) | undefined = undefined;

  constructor(
    readonly capacity: number,
    readonly producer: OutputGate,
    readonly consumer: InputGate,
    /** Which input of the consumer (1 or 2). */
    readonly inputIndex: 1 | 2,
    /** For messages: `vertex[subtask] -> vertex[subtask]`. */
    readonly label: string,
  ) {
    let n = 8;
    while (n < capacity + 1) n *= 2;
    this.kinds = new Uint8Array(n);
    this.values = new Array(n).fill(undefined);
    this.times = new Float64Array(n);
    this.mask = n - 1;
  }

  push(kind: number, value: unknown, time: number): void {
    if (this.size === this.mask + 1) this.grow();
    const t = this.tail;
    this.kinds[t] = kind;
    this.values[t] = value;
    this.times[t] = time;
    this.tail = (t + 1) & this.mask;
    if (++this.size === this.capacity) this.producer.full++;
    this.consumer.queued++;
    if (this.size > this.drainAt) this.drain!(this);
  }

  /** Kind of the next event; only when `size > 0`. */
  peekKind(): number {
    return this.kinds[this.head]!;
  }

  /** Removes the next event; read `lastValue` / `lastTime` afterwards. */
  pop(): number {
    const h = this.head;
    const kind = this.kinds[h]!;
    this.lastValue = this.values[h];
    this.lastTime = this.times[h]!;
    this.values[h] = undefined;
    this.head = (h + 1) & this.mask;
    if (this.size-- === this.capacity) this.producer.full--;
    this.consumer.queued--;
    return kind;
  }

  lastValue: unknown = undefined;
  lastTime = 0;

  private grow(): void {
    const n = (this.mask + 1) * 2;
    const kinds = new Uint8Array(n);
    const values = new Array(n).fill(undefined);
    const times = new Float64Array(n);
    for (let i = 0; i < this.size; i++) {
      const j = (this.head + i) & this.mask;
      kinds[i] = this.kinds[j]!;
      values[i] = this.values[j];
      times[i] = this.times[j]!;
    }
    this.kinds = kinds;
    this.values = values;
    this.times = times;
    this.head = 0;
    this.tail = this.size;
    this.mask = n - 1;
  }
}
