import fc from 'fast-check';
import {
  SlidingEventTimeWindows,
  StreamExecutionEnvironment,
  TumblingEventTimeWindows,
  WatermarkStrategy,
} from 'tidemark';
import { canonical } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

interface E {
  k: string;
  t: number;
  id: string;
}

const events = (side: string) =>
  fc
    .array(fc.record({ k: fc.constantFrom('a', 'b', 'c'), t: fc.integer({ min: -50, max: 300 }) }), {
      maxLength: 30,
    })
    .map((xs) => xs.sort((x, y) => x.t - y.t).map((x, i) => ({ ...x, id: `${side}${i}` })));

const wm = () => WatermarkStrategy.forMonotonousTimestamps<E>().withTimestampAssigner((e) => e.t);

/** Window starts containing `t` for windows of `size` sliding by `slide` (Flink's formula). */
function windowsOf(t: number, size: number, slide: number): number[] {
  const last = t - (((t % slide) + slide) % slide);
  const out: number[] = [];
  for (let start = last; start > t - size; start -= slide) out.push(start);
  return out;
}

describe('window join and coGroup', () => {
  test('join emits every same-key pair of each window, timestamped with the window end - 1 (tumbling and sliding)', async () => {
    await fc.assert(
      fc.asyncProperty(
        events('L'),
        events('R'),
        fc.integer({ min: 1, max: 3 }),
        fc.boolean(),
        async (left, right, p, sliding) => {
          const size = 40;
          const slide = sliding ? 20 : 40;
          const env = new StreamExecutionEnvironment({ parallelism: p });
          const out = env
            .fromArray(left, { watermarks: wm() })
            .join(env.fromArray(right, { watermarks: wm() }))
            .where((e) => e.k)
            .equalTo((e) => e.k)
            .window(sliding ? SlidingEventTimeWindows.of(size, slide) : TumblingEventTimeWindows.of(size))
            .apply((a, b) => `${a.id}+${b.id}`)
            .process<string>({
              processElement: (v, ctx, o) => o.collect(`${v}@${ctx.timestamp()}`),
            })
            .collect();
          await env.execute();
          const expected: string[] = [];
          for (const a of left)
            for (const b of right) {
              if (a.k !== b.k) continue;
              const wb = new Set(windowsOf(b.t, size, slide));
              for (const start of windowsOf(a.t, size, slide))
                if (wb.has(start)) expected.push(`${a.id}+${b.id}@${start + size - 1}`);
            }
          expect(canonical(out.values)).toEqual(canonical(expected));
        },
      ),
      { numRuns: 40 },
    );
  });

  test('coGroup gets both sides of every key and window, either possibly empty', async () => {
    await fc.assert(
      fc.asyncProperty(events('L'), events('R'), async (left, right) => {
        const size = 50;
        const env = new StreamExecutionEnvironment({ parallelism: 2 });
        const out = env
          .fromArray(left, { watermarks: wm() })
          .coGroup(env.fromArray(right, { watermarks: wm() }))
          .where((e) => e.k)
          .equalTo((e) => e.k)
          .window(TumblingEventTimeWindows.of(size))
          .apply<string>((ls, rs, o) => {
            const k = ls[0]?.k ?? rs[0]!.k;
            const w = Math.floor((ls[0] ?? rs[0])!.t / size);
            o.collect(
              `${k}/${w}: ${ls
                .map((e) => e.id)
                .sort()
                .join(',')} | ${rs
                .map((e) => e.id)
                .sort()
                .join(',')}`,
            );
          })
          .collect();
        await env.execute();
        const groups = new Map<string, { l: string[]; r: string[] }>();
        const add = (e: E, side: 'l' | 'r') => {
          const key = `${e.k}/${Math.floor(e.t / size)}`;
          const g = groups.get(key) ?? { l: [], r: [] };
          g[side].push(e.id);
          groups.set(key, g);
        };
        for (const e of left) add(e, 'l');
        for (const e of right) add(e, 'r');
        const expected = [...groups].map(
          ([key, g]) => `${key}: ${g.l.sort().join(',')} | ${g.r.sort().join(',')}`,
        );
        expect(canonical(out.values)).toEqual(canonical(expected));
      }),
      { numRuns: 40 },
    );
  });

  test('flatApply may emit any number of results per pair', async () => {
    const env = new StreamExecutionEnvironment();
    const a = env.fromArray([{ k: 'x', t: 1, id: 'a1' }], { watermarks: wm() });
    const b = env.fromArray(
      [
        { k: 'x', t: 2, id: 'b1' },
        { k: 'y', t: 3, id: 'b2' },
      ],
      { watermarks: wm() },
    );
    const out = a
      .join(b)
      .where((e) => e.k)
      .equalTo((e) => e.k)
      .window(TumblingEventTimeWindows.of(10))
      .flatApply<string>((l, r, o) => {
        o.collect(l.id);
        o.collect(r.id);
      })
      .collect();
    await env.execute();
    expect(out.values.sort()).toEqual(['a1', 'b1']);
  });
});
