import { StreamExecutionEnvironment } from 'tidemark';
import { describe, expect, test } from 'vitest';

describe('count windows (Flink countWindow / countWindowAll)', () => {
  test('tumbling: every `size` elements of a key; an incomplete window never fires', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const out = env
      .fromArray([1, 2, 3, 4, 5, 6, 7, 8].map((v) => ({ k: v % 2, v })))
      .keyBy((e) => e.k)
      .countWindow(3)
      .reduce((a, b) => ({ k: a.k, v: a.v + b.v }))
      .collect();
    await env.execute();
    // key 1: 1+3+5 (7 waits for two more); key 0: 2+4+6 (8 waits).
    expect(out.values.map((e) => `${e.k}:${e.v}`).sort()).toEqual(['0:12', '1:9']);
  });

  test('sliding: the last `size` elements every `slide` elements', async () => {
    const env = new StreamExecutionEnvironment();
    const out = env
      .fromArray([1, 2, 3, 4, 5, 6])
      .countWindowAll(3, 2)
      .process<number[]>({ process: (_ctx, elements, o) => o.collect([...elements]) })
      .collect();
    await env.execute();
    expect(out.values).toEqual([
      [1, 2],
      [2, 3, 4],
      [4, 5, 6],
    ]);
  });
});
