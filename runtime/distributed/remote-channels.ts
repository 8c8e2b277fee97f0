/**
 * Channels between slots: the producer batches events into frames (`frame-codec.ts`: records in
 * columns when they have one flat shape, else msgpackr); the consumer feeds them into a local
 * channel. Flow control is credit-based: a producer may have at most
 * `capacity` events in flight on a channel; the consumer returns credits as its task reads them,
 * so a slow consumer slows its producers down instead of filling memory.
 */
import type { MessagePort } from 'node:worker_threads';
import { TidemarkError } from '../../state/errors.js';
import { Channel, type InputGate, OutputGate, RECORD } from '../task/channel.js';
import type { OutChannel } from '../task/writers.js';
import { decodeFrame, encodeFrame, type Frame } from './frame-codec.js';
import type { SlotToSlot } from './protocol.js';

/** Events per frame before a channel flushes on its own. */
const FRAME_EVENTS = 256;
/** Records per channel checked for values that cannot cross a thread (functions, class instances). */
const CHECKED_RECORDS = 64;

/** Describes why a value cannot be sent to another thread, or undefined if it can. */
export function unsendable(value: unknown, path = 'record', depth = 0): string | undefined {
  if (depth > 16) return undefined;
  const t = typeof value;
  if (t === 'function') return `${path} is a function`;
  if (t === 'symbol') return `${path} is a symbol`;
  if (t !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length && i < 100; i++) {
      const p = unsendable(value[i], `${path}[${i}]`, depth + 1);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  if (value instanceof Map || value instanceof Set || value instanceof Date || ArrayBuffer.isView(value))
    return undefined;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null)
    return `${path} is an instance of ${(proto as { constructor?: { name?: string } }).constructor?.name ?? 'a class'} (only plain data crosses threads: its methods would be lost)`;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const p = unsendable(v, `${path}.${k}`, depth + 1);
    if (p !== undefined) return p;
  }
  return undefined;
}

/** The sending end of a channel to a subtask in another slot. */
export class RemoteOutChannel implements OutChannel {
  private kinds: number[] = [];
  private values: unknown[] = [];
  private times: number[] = [];
  private credits: number;
  private checked = 0;

  constructor(
    readonly id: string,
    private readonly port: MessagePort,
    private readonly producer: OutputGate,
    capacity: number,
    /** For messages: `producer -> consumer`. */
    private readonly label: string,
  ) {
    this.credits = capacity;
  }

  push(kind: number, value: unknown, time: number): void {
    if (kind === RECORD && this.checked < CHECKED_RECORDS) {
      this.checked++;
      const problem = unsendable(value);
      if (problem !== undefined)
        throw new TidemarkError(
          'SERIALIZATION_ERROR',
          `${this.label}: a record cannot be sent to another worker: ${problem}`,
        );
    }
    this.kinds.push(kind);
    this.values.push(value);
    this.times.push(time);
    if (--this.credits === 0) this.producer.full++;
    if (this.kinds.length >= FRAME_EVENTS) this.flush();
  }

  /** Sends what is batched. */
  flush(): void {
    if (this.kinds.length === 0) return;
    let encoded: ReturnType<typeof encodeFrame>;
    try {
      encoded = encodeFrame(this.kinds, this.values, this.times);
    } catch (e) {
      throw new TidemarkError(
        'SERIALIZATION_ERROR',
        `${this.label}: records cannot be encoded to cross workers: ${(e as Error).message}`,
      );
    }
    this.kinds = [];
    this.values = [];
    this.times = [];
    const msg: SlotToSlot = { type: 'frame', channel: this.id, frame: encoded.frame };
    this.port.postMessage(msg, encoded.transfer);
  }

  /** The consumer read `n` events: they may be replaced. */
  credit(n: number): boolean {
    const before = this.credits;
    this.credits += n;
    if (before <= 0 && this.credits > 0) {
      this.producer.full--;
      return true;
    }
    return false;
  }
}

/** The receiving end: a local channel fed by frames; it returns credits as it is read. */
export class RemoteInChannel extends Channel {
  private consumed = 0;
  constructor(
    readonly id: string,
    private readonly port: MessagePort,
    capacity: number,
    consumer: InputGate,
    inputIndex: 1 | 2,
    label: string,
  ) {
    // NOTE: the producer is in another slot: its credits, not this ring, hold it back.
    super(capacity, new OutputGate(), consumer, inputIndex, label);
  }

  override pop(): number {
    if (++this.consumed >= this.capacity >> 2) this.returnCredits();
    return super.pop();
  }

  /** Sends the credits for what was read since the last time. */
  returnCredits(): void {
    if (this.consumed === 0) return;
    const msg: SlotToSlot = { type: 'credit', channel: this.id, n: this.consumed };
    this.consumed = 0;
    this.port.postMessage(msg);
  }

  /** Feeds a frame's events into the channel. */
  receive(frame: Frame): void {
    decodeFrame(frame, (kind, value, time) => this.push(kind, value, time));
  }
}
