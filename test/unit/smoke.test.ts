import { StreamExecutionEnvironment } from 'tidemark';
import { expect, test } from 'vitest';

test('word count in process', async () => {
  const env = new StreamExecutionEnvironment({ parallelism: 3 });
  const out = env
    .fromElements('a b', 'b c', 'c c')
    .flatMap((l) => l.split(' '))
    .keyBy((w) => w)
    .map((w) => w)
    .collect();
  await env.execute();
  expect(out.values.sort()).toEqual(['a', 'b', 'b', 'c', 'c', 'c']);
});
