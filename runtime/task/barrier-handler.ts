/**
 * What a task does with the checkpoint barriers on its input channels (Flink's
 * `CheckpointBarrierHandler` family), one object per checkpointing mode:
 *
 * - {@link AlignedBarrierHandler} (exactly-once): a channel whose barrier `n` came is blocked until
 *   barrier `n` came on every channel, so no record after the barrier is processed before the
 *   snapshot; then the task takes checkpoint `n` and the channels read on.
 * - {@link BarrierTracker} (at-least-once): nothing is blocked; the task takes checkpoint `n` once
 *   barrier `n` came on every channel (records after an early barrier may be in the snapshot, and
 *   are replayed after a restore: at least once).
 *
 * Either way a channel that has ended counts as having its barrier, and a barrier of a newer
 * checkpoint abandons the alignment of an older one (it was abandoned by the coordinator). A task
 * whose upstream tasks have all finished gets its checkpoint from the coordinator instead of as
 * barriers ({@link BarrierHandler.triggerAtEndOfInput}): it takes it once every channel has ended.
 */
import type { Channel } from './channel.js';

/** Handles the barriers of one task's input channels. */
export interface BarrierHandler {
  /** Barrier `id` arrived on channel `channel`. */
  onBarrier(channel: Channel, id: number): void;
  /** A channel ended: a pending checkpoint may now have every barrier it waits for. */
  onChannelEnded(): void;
  /**
   * Take checkpoint `id` once every channel has ended or brought its barrier (the coordinator
   * asks this of a task whose upstream tasks have all finished: no barrier will come).
   */
  triggerAtEndOfInput(id: number): void;
  /** Checkpoint `id` was abandoned: stop waiting for its barriers. */
  abort(id: number): void;
  /** True while some channel is blocked by the alignment. */
  readonly blocking: boolean;
  /** Wall time the first barrier of the pending (or last taken) checkpoint came. */
  readonly firstBarrierAt: number;
}

abstract class Alignment implements BarrierHandler {
  /** Wall time the first barrier of the pending checkpoint came (for checkpoint statistics). */
  firstBarrierAt = 0;
  /** The checkpoint whose barriers are awaited, and the channels they came on. */
  private pending: { id: number; received: Set<Channel> } | undefined;

  constructor(
    protected readonly inputs: readonly Channel[],
    /** Takes checkpoint `id` (every barrier came). */
    private readonly takeCheckpoint: (id: number) => void,
  ) {}

  abstract get blocking(): boolean;
  /** A barrier of the pending checkpoint came on this channel. */
  protected abstract received(channel: Channel): void;
  /** The pending checkpoint is taken or abandoned. */
  protected abstract released(): void;

  onBarrier(channel: Channel, id: number): void {
    const p = this.pending;
    if (p !== undefined && id < p.id) return; // a barrier of an abandoned checkpoint
    if (p !== undefined && id > p.id) this.release(); // the older one was abandoned
    if (this.pending === undefined) this.firstBarrierAt = Date.now();
    const pending = (this.pending ??= { id, received: new Set() });
    pending.received.add(channel);
    this.received(channel);
    this.check();
  }

  onChannelEnded(): void {
    if (this.pending !== undefined) this.check();
  }

  triggerAtEndOfInput(id: number): void {
    const p = this.pending;
    if (p !== undefined && id <= p.id) return;
    if (p !== undefined) this.release(); // an older one, abandoned
    this.pending = { id, received: new Set() };
    this.firstBarrierAt = Date.now();
    this.check();
  }

  abort(id: number): void {
    if (this.pending !== undefined && this.pending.id <= id) this.release();
  }

  /** Takes the checkpoint once its barrier came on every channel that has not ended. */
  private check(): void {
    const p = this.pending;
    if (p === undefined) return;
    for (const c of this.inputs) if (!c.ended && !p.received.has(c)) return;
    this.release();
    this.takeCheckpoint(p.id);
  }

  private release(): void {
    this.pending = undefined;
    this.released();
  }
}

/** Exactly-once: channels whose barrier came wait for the others (see the module comment). */
export class AlignedBarrierHandler extends Alignment {
  private blocked = 0;
  get blocking(): boolean {
    return this.blocked > 0;
  }
  protected received(channel: Channel): void {
    if (channel.blocked) return;
    channel.blocked = true;
    this.blocked++;
  }
  protected released(): void {
    if (this.blocked === 0) return;
    for (const c of this.inputs) c.blocked = false;
    this.blocked = 0;
  }
}

/** At-least-once: barriers are counted, nothing waits (see the module comment). */
export class BarrierTracker extends Alignment {
  get blocking(): boolean {
    return false;
  }
  protected received(): void {}
  protected released(): void {}
}

/** The barrier handler of a task in the given checkpointing mode. */
export function createBarrierHandler(
  mode: 'exactly-once' | 'at-least-once',
  inputs: readonly Channel[],
  takeCheckpoint: (id: number) => void,
): BarrierHandler {
  return mode === 'exactly-once'
    ? new AlignedBarrierHandler(inputs, takeCheckpoint)
    : new BarrierTracker(inputs, takeCheckpoint);
}
