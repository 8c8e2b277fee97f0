// Fraud detection (after Flink's tutorial): a keyed process function with state and timers.
//
// A small transaction (under $1.00) followed, on the same account and within one minute of event
// time, by a large one (over $500.00) raises an alert: a classic pattern of card testing. The
// function keeps, per account, the time of the last small transaction in keyed state, and an
// event-time timer clears that state a minute later so it does not grow without bound.
//
// Run it with:  npx tidemark run examples/fraud-detection.ts --parallelism 4
import {
  type Collector,
  job,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type OnTimerContext,
  type RuntimeContext,
  type ValueState,
  ValueStateDescriptor,
  WatermarkStrategy,
} from 'tidemark';

/** A card transaction. */
export interface Transaction {
  accountId: number;
  amount: number;
  timestamp: number;
}

/** An alert for an account. */
export interface Alert {
  accountId: number;
  smallAt: number;
  largeAt: number;
  amount: number;
}

export const SMALL_AMOUNT = 1.0;
export const LARGE_AMOUNT = 500.0;
export const ONE_MINUTE = 60_000;
export const ACCOUNTS = 50;
/** Number of transactions the job generates (override with TRANSACTIONS=n). */
export const COUNT = Number(process.env.TRANSACTIONS ?? 200_000);
const START = Date.UTC(2026, 0, 1);

/** Transaction `i`: deterministic, one every 500 ms of event time, some accounts misbehave. */
export function transaction(i: number): Transaction {
  let x = Math.imul(i ^ (i >>> 15), 0x2c1b3c6d);
  x = Math.imul(x ^ (x >>> 12), 0x297a2d39);
  x = (x ^ (x >>> 15)) >>> 0;
  const accountId = x % ACCOUNTS;
  const r = (x >>> 8) % 1000;
  // Mostly ordinary amounts; now and then a tiny or a huge one.
  const amount = r < 15 ? (r + 1) / 20 : r > 985 ? 500 + r : 5 + (r % 200);
  return { accountId, amount, timestamp: START + i * 500 };
}

/** Flags a large transaction that follows a small one within a minute. */
export class FraudDetector extends KeyedProcessFunction<number, Transaction, Alert> {
  private smallAt!: ValueState<number>;

  override open(ctx: RuntimeContext): void {
    this.smallAt = ctx.getState(new ValueStateDescriptor<number>('small-transaction-time'));
  }

  processElement(t: Transaction, ctx: KeyedProcessContext<number>, out: Collector<Alert>): void {
    const smallAt = this.smallAt.value();
    if (smallAt !== undefined && t.timestamp - smallAt < ONE_MINUTE && t.amount > LARGE_AMOUNT) {
      out.collect({ accountId: ctx.getCurrentKey(), smallAt, largeAt: t.timestamp, amount: t.amount });
      this.smallAt.clear();
    }
    if (t.amount < SMALL_AMOUNT) {
      this.smallAt.update(t.timestamp);
      // Clean the state up a minute later (the check above does not rely on it).
      ctx.timerService().registerEventTimeTimer(t.timestamp + ONE_MINUTE);
    }
  }

  override onTimer(timestamp: number, _ctx: OnTimerContext<number>, _out: Collector<Alert>): void {
    const smallAt = this.smallAt.value();
    if (smallAt !== undefined && smallAt + ONE_MINUTE <= timestamp) this.smallAt.clear();
  }
}

export default job(
  (env) => {
    const alerts = env
      .fromGenerator(transaction, {
        count: COUNT,
        watermarks: WatermarkStrategy.forMonotonousTimestamps<Transaction>().withTimestampAssigner(
          (t) => t.timestamp,
        ),
      })
      .name('transactions')
      .setParallelism(1)
      .keyBy((t) => t.accountId)
      .process(new FraudDetector())
      .name('fraud detector')
      .uid('fraud-detector');
    alerts.print('alert');
    // At the end: one JSON object of the number of alerts per account.
    alerts
      .map((a) => ({ accountId: a.accountId, alerts: 1 }))
      .keyBy((a) => a.accountId)
      .reduce((a, b) => ({ accountId: a.accountId, alerts: a.alerts + b.alerts }))
      .printSummary(
        (a) => a.accountId,
        (a) => a.alerts,
      );
  },
  { name: 'fraud-detection', parallelism: 2 },
);
