/**
 * A task's input (Flink's `StreamInputProcessor`): reads the events of its input channels in turn
 * and hands them on: records to the chain's head operator (by input, for two-input operators),
 * watermarks and idleness to the watermark valve, barriers to the barrier handler, the end of a
 * channel to the input's end.
 */
import type { OneInputStreamOperator, TwoInputStreamOperator } from '../../operators/operator.js';
import type { BarrierHandler } from './barrier-handler.js';
import {
  BARRIER,
  type Channel,
  END,
  IDLE,
  type InputGate,
  type OutputGate,
  RECORD,
  WATERMARK,
} from './channel.js';
import type { ChainMember } from './operator-chain.js';
import { WatermarkValve } from './watermark-valve.js';

/** What the input processor reads of its task between two events. */
export interface InputTask {
  readonly blocked: boolean;
  readonly status: string;
  readonly inputGate: InputGate;
  readonly outputGate: OutputGate;
}

/** Reads a task's input channels (see the module comment). */
export class InputProcessor {
  /** Combines the channels' watermarks (read by the observer). */
  readonly valve: WatermarkValve;
  private readonly twoInputs: boolean;
  private endedChannels = 0;
  private readonly endedPerInput = [0, 0, 0];
  private readonly channelsPerInput = [0, 0, 0];
  /** The channel read first in the next step. */
  private current = 0;

  constructor(
    private readonly task: InputTask,
    private readonly inputs: readonly Channel[],
    private readonly head: ChainMember,
    private readonly barriers: BarrierHandler,
    /** Picks a channel among `candidates` readable ones (deterministic simulation), if set. */
    private readonly chooseChannel: ((candidates: number) => number) | undefined,
    /** Every channel ended. */
    private readonly endOfInput: () => void,
  ) {
    const op = head.op;
    this.valve = new WatermarkValve(inputs.length, {
      watermark: (wm) => op.processWatermark(wm),
      idle: (idle) => op.processIdle(idle),
    });
    for (const c of inputs)
      this.channelsPerInput[c.inputIndex] = (this.channelsPerInput[c.inputIndex] ?? 0) + 1;
    const t = head.node.transformation;
    this.twoInputs = t.type === 'operator' && t.inputs.length === 2;
  }

  /** True if some channel can be read now (alignment may block the ones that have events). */
  hasReadableInput(): boolean {
    return !this.barriers.blocking || this.inputs.some((c) => c.size > 0 && !c.blocked);
  }

  /** Processes up to `budget` events, while the task may go on. */
  processInput(budget: number): void {
    const head = this.head;
    const op = head.op as OneInputStreamOperator<unknown, unknown> &
      TwoInputStreamOperator<unknown, unknown, unknown>;
    const task = this.task;
    const inputs = this.inputs;
    const n = inputs.length;
    const choose = this.chooseChannel;
    const twoInputs = this.twoInputs;

    // NOTE: each step starts at the next channel, so a busy channel cannot starve the others.
    if (++this.current >= n) this.current = 0;
    for (let done = 0; done < budget; done++) {
      if (
        task.outputGate.full > 0 ||
        task.inputGate.queued === 0 ||
        task.blocked ||
        task.status !== 'running'
      )
        return;
      let ch: Channel;
      if (choose !== undefined) {
        const picked = this.pickChannel(choose);
        if (picked === undefined) return;
        ch = picked;
      } else {
        ch = inputs[this.current]!;
        let tries = 0;
        while (ch.size === 0 || ch.blocked) {
          if (++tries > n) return;
          if (++this.current === n) this.current = 0;
          ch = inputs[this.current]!;
        }
      }
      const kind = ch.pop();
      if (kind === RECORD) {
        head.metrics.numRecordsIn.count++;
        ch.records++;
        if (!twoInputs) op.processElement(ch.lastValue, ch.lastTime);
        else if (ch.inputIndex === 1) op.processElement1(ch.lastValue, ch.lastTime);
        else op.processElement2(ch.lastValue, ch.lastTime);
      } else if (kind === WATERMARK) {
        this.valve.inputWatermark(ch.index, ch.lastTime);
      } else if (kind === IDLE) {
        this.valve.inputIdle(ch.index, ch.lastValue as boolean);
      } else if (kind === END) {
        this.endChannel(ch);
      } else if (kind === BARRIER) {
        this.barriers.onBarrier(ch, ch.lastValue as number);
      }
    }
  }

  private pickChannel(choose: (candidates: number) => number): Channel | undefined {
    const ready: Channel[] = [];
    for (const c of this.inputs) if (c.size > 0 && !c.blocked) ready.push(c);
    return ready.length <= 1 ? ready[0] : ready[choose(ready.length)];
  }

  private endChannel(ch: Channel): void {
    ch.ended = true;
    this.endedChannels++;
    // NOTE: the last channel too: a checkpoint waiting for it is taken before the input ends (the
    // task then finishes), with every record in its state and its barrier ahead of the end.
    this.barriers.onChannelEnded();
    const k = ch.inputIndex;
    if (++this.endedPerInput[k]! === this.channelsPerInput[k]) this.head.op.endInput(k);
    if (this.endedChannels === this.inputs.length) this.endOfInput();
  }
}
