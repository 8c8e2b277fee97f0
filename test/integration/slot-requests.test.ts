// A restart that lacks slots (a task manager left) waits for task managers to bring them, at most
// the slot request timeout (runtime/distributed/task-manager.ts, TaskManagerPool.awaitSlots).
import { afterEach, describe, expect, test } from 'vitest';
import { TaskManagerPool } from '../../runtime/distributed/task-manager.js';
import { connectPeer, type Link } from '../../runtime/distributed/wire.js';
import { waitFor } from '../helpers/jobs.js';
import { emptySlotInit } from '../helpers/slot-init.js';
import { freePort } from '../setup/redis.js';

const TOKEN = 'slot-request-test-token';
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

const events = { message: () => {}, exit: () => {} };

async function fakeTaskManager(port: number, slots: number): Promise<Link> {
  const link = await connectPeer('127.0.0.1', port, TOKEN, {
    role: 'taskmanager',
    slots,
    dataHost: '127.0.0.1',
    dataPort: 1,
  });
  closers.push(() => link.close());
  return link;
}

async function poolOfOne(slotRequestTimeoutMs: number, log: string[]) {
  const port = await freePort();
  const listening = TaskManagerPool.listen(`127.0.0.1:${port}`, TOKEN, 1, {
    slotRequestTimeoutMs,
    log: (l) => log.push(l),
  });
  const first = await fakeTaskManager(port, 2);
  const pool = await listening;
  closers.push(() => pool.close());
  // The first deployment uses both slots: what a restart waits for.
  pool.start([emptySlotInit(0), emptySlotInit(1)], events);
  return { pool, port, first };
}

/** Polls until `done()` holds (test/helpers/jobs.ts's waitFor, with this file's default timeout). */
function until(done: () => boolean, what: string): Promise<void> {
  return waitFor(done, what, { timeoutMs: 20_000, pollMs: 10 });
}

describe('a restart waits for the slots it lacks', () => {
  test('until a task manager brings them', async () => {
    const log: string[] = [];
    const { pool, port, first } = await poolOfOne(60_000, log);
    first.close();
    await until(() => pool.slots === 0, 'the task manager to leave');
    let got: number | undefined;
    const waiting = pool.awaitSlots(2).then((n) => (got = n));
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBeUndefined();
    await fakeTaskManager(port, 1); // one slot is not enough
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBeUndefined();
    await fakeTaskManager(port, 1);
    await waiting;
    expect(got).toBe(2);
    expect(log.join('\n')).toMatch(
      /the job needs 2 slots and the task managers connected have 0: waiting up to 60000 ms for task managers to bring more \(slot request timeout\)/,
    );
  });

  test('at most the slot request timeout, then with the slots there are; never more than the first deployment had', async () => {
    const log: string[] = [];
    const { pool, port, first } = await poolOfOne(500, log);
    first.close();
    await until(() => pool.slots === 0, 'the task manager to leave');
    const started = Date.now();
    expect(await pool.awaitSlots(2)).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    await fakeTaskManager(port, 1);
    await until(() => pool.slots === 1, 'a task manager of one slot');
    expect(await pool.awaitSlots(2)).toBe(1);
    expect(log.join('\n')).toMatch(
      /no more slots came within 500 ms: running on 1 of 2 slots \(subtasks share slots\)/,
    );
    // An attempt that wants more slots than the first deployment used waits for no more than those.
    await fakeTaskManager(port, 1);
    await until(() => pool.slots === 2, 'two slots');
    const at = Date.now();
    expect(await pool.awaitSlots(4)).toBe(2);
    expect(Date.now() - at).toBeLessThan(400);
  });

  test('a cancelled attempt stops waiting', async () => {
    const { pool, first } = await poolOfOne(60_000, []);
    first.close();
    await until(() => pool.slots === 0, 'the task manager to leave');
    const ac = new AbortController();
    const waiting = pool.awaitSlots(2, ac.signal);
    setTimeout(() => ac.abort(), 200);
    expect(await waiting).toBe(0);
  });
});
