import {
  type RuntimeContext,
  type StreamExecutionEnvironment,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { checkExactlyOnce, type FailureInjector } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import { MemoryCheckpointStorage } from '../../state/storage/memory.js';

/** A keyed running count per key, emitted per record; failures may strike in the map. */
function countingJob(env: StreamExecutionEnvironment, injector: FailureInjector) {
  return env
    .fromGenerator((i) => ({ k: `k${i % 5}`, i }), { count: 400 })
    .map((e) => {
      injector.point('map');
      return e;
    })
    .keyBy((e) => e.k)
    .map({
      open(ctx: RuntimeContext) {
        (this as unknown as { n: ValueState<number> }).n = ctx.getState(
          new ValueStateDescriptor<number>('n'),
        );
      },
      map(e: { k: string; i: number }) {
        const s = (this as unknown as { n: ValueState<number> }).n;
        s.update((s.value() ?? 0) + 1);
        return `${e.k}#${s.value()}`;
      },
    })
    .collectCommitted();
}

describe('checkpoints and exactly-once recovery', () => {
  test('failures in a user function: restored from checkpoints, nothing lost or twice', async () => {
    const report = await checkExactlyOnce(countingJob, {
      failAtCalls: [100, 350, 600],
      storage: () => new MemoryCheckpointStorage(),
      seed: 3,
    });
    expect(report.injectedFailures).toBeGreaterThanOrEqual(2);
    expect(report.restarts).toBe(report.injectedFailures);

    expect(report.completedCheckpoints).toBeGreaterThan(0);
  });
});
