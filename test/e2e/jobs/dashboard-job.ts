// The job the dashboard's browser test watches (test/e2e/dashboard.test.ts). It runs until it is
// cancelled, in event time close to wall time, with two branches:
//
// - clicks: a paced generator of clicks, a few of them a minute late, counted per user in one-second
//   tumbling windows; the late ones go to a late-data side output (a late-data count to see);
// - sensors: a paced generator of readings, and a gauge that sends twenty readings and then
//   nothing, without idleness: its watermark stops there, and the window downstream of both holds
//   its own at the gauge's (a watermark held back by an idle input, and named as such).
//
// The first attempt fails once on one click (an exception with operator, subtask and record), so
// the job restarts. Checkpoint it with --checkpoint-interval.
import { job, OutputTag, TumblingEventTimeWindows, WatermarkStrategy } from 'tidemark';

/** Records per split: enough for hours at these rates. */
const PER_SPLIT = 1_000_000_000;
/** Event time of index 0: the time the job module loaded. */
const START = Date.now();

interface Click {
  user: string;
  time: number;
  n: number;
}
interface Reading {
  sensor: string;
  time: number;
  value: number;
}

const lateClicks = new OutputTag<Click>('late-clicks');
/** The click the first attempt fails on. */
const FAILING_CLICK = 150;
let failed = false;

/** Click `i`: 200 a second per subtask, so event time keeps up with wall time; one in 40 is late. */
function click(i: number): Click {
  const n = i % PER_SPLIT;
  const time = START + n * 5;
  return { user: `user-${(i * 7) % 13}`, time: n % 40 === 39 ? time - 60_000 : time, n: i };
}

/** Reading `i`: 50 a second per subtask. */
function reading(i: number): Reading {
  const split = Math.floor(i / PER_SPLIT);
  const n = i % PER_SPLIT;
  return { sensor: `sensor-${split}-${n % 3}`, time: START + n * 20, value: n % 100 };
}

/** A gauge that sends twenty readings, then nothing (and never ends). */
async function* quietGauge(): AsyncGenerator<Reading> {
  for (let n = 0; n < 20; n++) {
    yield { sensor: 'gauge', time: Date.now(), value: n };
    await new Promise((r) => setTimeout(r, 20));
  }
  for (;;) await new Promise((r) => setTimeout(r, 1000));
}

export default job(
  (env) => {
    const clicks = env
      .fromGenerator(click, {
        count: 2 * PER_SPLIT,
        ratePerSecond: 400,
        watermarks: WatermarkStrategy.forBoundedOutOfOrderness<Click>(200).withTimestampAssigner(
          (c) => c.time,
        ),
      })
      .name('clicks')
      .uid('clicks')
      .map((c) => {
        if (!failed && c.n === FAILING_CLICK) {
          failed = true;
          throw new Error(`click ${c.n} is poisoned`);
        }
        return c;
      })
      .name('check clicks');
    const counts = clicks
      .keyBy((c) => c.user)
      .window(TumblingEventTimeWindows.of(1000))
      .sideOutputLateData(lateClicks)
      .aggregate({
        createAccumulator: () => 0,
        add: (_c: Click, n: number) => n + 1,
        getResult: (n: number) => n,
        merge: (a: number, b: number) => a + b,
      })
      .name('clicks per user')
      .uid('clicks-per-user');
    counts
      .addSink({ invoke: () => {} })
      .name('click counts')
      .setParallelism(1);
    counts
      .getSideOutput(lateClicks)
      .addSink({ invoke: () => {} })
      .name('late clicks')
      .setParallelism(1);

    const readingTimes = () =>
      WatermarkStrategy.forBoundedOutOfOrderness<Reading>(100).withTimestampAssigner((r) => r.time);
    const sensors = env
      .fromGenerator(reading, { count: 2 * PER_SPLIT, ratePerSecond: 100, watermarks: readingTimes() })
      .name('sensors')
      .uid('sensors');
    const gauges = env
      .fromAsyncIterable(quietGauge, { bounded: false, watermarks: readingTimes() })
      .name('gauges')
      .uid('gauges');
    sensors
      .union(gauges)
      .keyBy((r) => r.sensor)
      .window(TumblingEventTimeWindows.of(1000))
      .reduce((a, b) => ({ ...a, value: Math.max(a.value, b.value) }))
      .name('max per sensor')
      .uid('max-per-sensor')
      .addSink({ invoke: () => {} })
      .name('sensor maxima');
  },
  { name: 'dashboard-test', parallelism: 2 },
);
