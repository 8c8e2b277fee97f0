/**
 * Combines the watermarks and idleness of a task's input channels (Flink's StatusWatermarkValve).
 *
 * - The combined watermark is the minimum over active, aligned channels; it never goes back.
 * - An idle channel leaves the minimum. It rejoins when it is active again and its watermark has
 *   caught up with the last combined watermark ("aligned"). A channel that is aligned the moment it
 *   becomes active (it went idle ahead of the others) counts at once: the minimum is recomputed
 *   and emitted then, not with the next watermark of some channel (as Flink's current
 *   StatusWatermarkValve; an older valve emitted nothing, and the watermark stalled while every
 *   other active channel was still catching up).
 * - When every channel is idle, the maximum watermark over all channels is emitted (if it
 *   advances) and the output becomes idle; the first active channel makes it active again.
 */
export interface ValveOutput {
  watermark(watermark: number): void;
  idle(idle: boolean): void;
}

export class WatermarkValve {
  private readonly wm: Float64Array;
  private readonly idleFlags: Uint8Array;
  private readonly aligned: Uint8Array;
  /** The last combined watermark emitted. */
  lastWatermark = Number.NEGATIVE_INFINITY;
  /** Whether the combined output is idle. */
  lastIdle = false;

  constructor(
    readonly numChannels: number,
    private readonly out: ValveOutput,
  ) {
    this.wm = new Float64Array(numChannels).fill(Number.NEGATIVE_INFINITY);
    this.idleFlags = new Uint8Array(numChannels);
    this.aligned = new Uint8Array(numChannels).fill(1);
  }

  /** The last watermark of one channel. */
  channelWatermark(channel: number): number {
    return this.wm[channel]!;
  }

  isChannelIdle(channel: number): boolean {
    return this.idleFlags[channel] === 1;
  }

  /** True if the channel's watermark counts in the minimum (active and caught up). */
  isChannelAligned(channel: number): boolean {
    return this.aligned[channel] === 1 && this.idleFlags[channel] === 0;
  }

  inputWatermark(channel: number, watermark: number): void {
    if (this.idleFlags[channel] === 1 || !(watermark > this.wm[channel]!)) return;
    this.wm[channel] = watermark;
    if (watermark >= this.lastWatermark) this.aligned[channel] = 1;
    this.emitMinOfAligned();
  }

  inputIdle(channel: number, idle: boolean): void {
    if (idle) {
      if (this.idleFlags[channel] === 1) return;
      this.idleFlags[channel] = 1;
      this.aligned[channel] = 0;
      if (this.allIdle()) {
        this.emitMaxOfAll();
        if (!this.lastIdle) {
          this.lastIdle = true;
          this.out.idle(true);
        }
      } else {
        this.emitMinOfAligned();
      }
    } else {
      if (this.idleFlags[channel] === 0) return;
      this.idleFlags[channel] = 0;
      // NOTE: the output turns active before any watermark it emits: a watermark that an idle
      // output sent would be ignored downstream.
      if (this.lastIdle) {
        this.lastIdle = false;
        this.out.idle(false);
      }
      if (this.wm[channel]! >= this.lastWatermark) {
        this.aligned[channel] = 1;
        this.emitMinOfAligned();
      }
    }
  }

  private allIdle(): boolean {
    for (let i = 0; i < this.numChannels; i++) if (this.idleFlags[i] === 0) return false;
    return true;
  }

  private emitMinOfAligned(): void {
    let min = Number.POSITIVE_INFINITY;
    let any = false;
    for (let i = 0; i < this.numChannels; i++) {
      if (this.aligned[i] === 1 && this.idleFlags[i] === 0) {
        any = true;
        if (this.wm[i]! < min) min = this.wm[i]!;
      }
    }
    if (any && min > this.lastWatermark) {
      this.lastWatermark = min;
      this.out.watermark(min);
    }
  }

  private emitMaxOfAll(): void {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < this.numChannels; i++) if (this.wm[i]! > max) max = this.wm[i]!;
    if (max > this.lastWatermark) {
      this.lastWatermark = max;
      this.out.watermark(max);
    }
  }
}
