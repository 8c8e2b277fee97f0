// The watermark valve against every scenario of Flink's StatusWatermarkValveTest (newest
// version), and the reactivation case where a channel that went idle ahead of the others counts
// again the moment it is active. Each input is followed by the exact outputs it must produce
// (watermarks as numbers, statuses as 'IDLE' / 'ACTIVE') and nothing else.
import { describe, expect, test } from 'vitest';
import { WatermarkValve } from '../../runtime/task/watermark-valve.js';

type Out = number | 'IDLE' | 'ACTIVE';

function valve(channels: number) {
  const seen: Out[] = [];
  const v = new WatermarkValve(channels, {
    watermark: (w) => seen.push(w),
    idle: (idle) => seen.push(idle ? 'IDLE' : 'ACTIVE'),
  });
  const api = {
    v,
    wm(channel: number, w: number, ...expected: Out[]) {
      v.inputWatermark(channel, w);
      expect(seen.splice(0)).toEqual(expected);
      return api;
    },
    idle(channel: number, ...expected: Out[]) {
      v.inputIdle(channel, true);
      expect(seen.splice(0)).toEqual(expected);
      return api;
    },
    active(channel: number, ...expected: Out[]) {
      v.inputIdle(channel, false);
      expect(seen.splice(0)).toEqual(expected);
      return api;
    },
  };
  return api;
}

describe("Flink's StatusWatermarkValveTest scenarios", () => {
  test('single input: increasing watermarks pass', () => {
    valve(1).wm(0, 0, 0).wm(0, 25, 25);
  });

  test('single input: decreasing watermarks give nothing', () => {
    valve(1).wm(0, 25, 25).wm(0, 18).wm(0, 42, 42);
  });

  test('single input: status toggling; repeated statuses give nothing', () => {
    valve(1).active(0).idle(0, 'IDLE').idle(0).active(0, 'ACTIVE');
  });

  test('single input: the watermark stays as it was while idle', () => {
    const h = valve(1).wm(0, 25, 25).idle(0, 'IDLE').wm(0, 50);
    expect(h.v.channelWatermark(0)).toBe(25);
    h.active(0, 'ACTIVE').wm(0, 50, 50);
  });

  test('several inputs: a watermark only once every channel has one', () => {
    valve(3).wm(0, 0).wm(1, 0).wm(2, 0, 0);
  });

  test('several inputs: the new minimum as soon as it advances', () => {
    valve(3)
      .wm(0, 0)
      .wm(1, 0)
      .wm(2, 0, 0)
      .wm(0, 12)
      .wm(2, 8)
      .wm(2, 10)
      .wm(1, 15, 10)
      .wm(2, 17, 12)
      .wm(0, 20, 15);
  });

  test('several inputs: decreasing watermarks give nothing', () => {
    valve(3).wm(0, 25).wm(1, 10).wm(2, 17, 10).wm(0, 12).wm(1, 8).wm(2, 15);
  });

  test('several inputs: status toggling', () => {
    valve(2).active(0).active(1).idle(1).idle(0, 'IDLE').idle(0).idle(1).active(1, 'ACTIVE').active(0);
  });

  test('several inputs: the minimum of the active channels while some are idle', () => {
    valve(3).wm(0, 15).wm(1, 10).idle(2, 10).wm(1, 18, 15).wm(0, 20, 18);
  });

  test('several inputs: channels going idle one by one advance the minimum', () => {
    valve(3).wm(0, 25).wm(1, 10).wm(2, 17, 10).idle(1, 17).idle(2, 25);
  });

  test('several inputs: all idle flushes the maximum, then IDLE', () => {
    valve(3).wm(0, 10).wm(1, 5).wm(2, 3, 3).idle(0).idle(1).idle(2, 10, 'IDLE');
  });

  test('several inputs: a reactivated channel must catch up before it counts again', () => {
    const h = valve(3).wm(0, 10).wm(1, 7).wm(2, 3, 3).idle(2, 7).active(2);
    expect(h.v.isChannelAligned(2)).toBe(false);
    h.wm(2, 5);
    expect(h.v.channelWatermark(2)).toBe(5);
    h.wm(2, 9);
    expect(h.v.isChannelAligned(2)).toBe(true);
    h.wm(1, 12, 9);
  });

  test('several inputs: nothing when every active channel is unaligned', () => {
    valve(3).wm(0, 10).wm(1, 7).idle(2, 7).active(2).idle(0).idle(1);
  });

  test('an unaligned active channel that goes idle again gives nothing', () => {
    valve(2).wm(0, 7).wm(1, 10, 7).idle(0, 10).active(0).wm(0, 9).idle(0);
  });
});

describe('reactivation', () => {
  test('a channel aligned the moment it is active again counts at once (the minimum is emitted then)', () => {
    // ch 1 goes idle ahead (20); ch 0 and 2 leave the minimum (0 idle then active but behind,
    // 2 idle): no aligned channel is left. When ch 1 comes back, its 20 is the new minimum.
    const h = valve(3).wm(0, 5).wm(1, 20).wm(2, 8, 5).idle(1).idle(0, 8).active(0).idle(2);
    expect(h.v.isChannelAligned(0)).toBe(false);
    h.active(1, 20);
    expect(h.v.lastWatermark).toBe(20);
  });

  test('an idle valve turns active before it emits the watermark of the reactivated channel', () => {
    // Every channel idle: the maximum (20) went out with IDLE. Ch 1 had 20, so it is aligned at
    // once; nothing is higher, so only ACTIVE goes out.
    valve(2).wm(0, 5).wm(1, 20, 5).idle(0, 20).idle(1, 'IDLE').active(1, 'ACTIVE').active(0);
  });

  test('a reactivated channel behind the output waits for its own catch-up', () => {
    valve(2).wm(0, 5).wm(1, 20, 5).idle(0, 20).active(0).wm(0, 19).wm(0, 21).wm(1, 30, 21);
  });
});
