// Heartbeats between a job manager and its task managers over TCP, against a fake peer on the
// other side: a peer that falls silent (a cut link, a hung host: no error, no close) is given up
// after the heartbeat timeout, on either side; messages of an earlier deployment are dropped.
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import type { SlotEvents } from '../../runtime/distributed/cluster.js';
import type { FromTaskManager, ToTaskManager } from '../../runtime/distributed/protocol.js';
import { runTaskManager, TaskManagerPool } from '../../runtime/distributed/task-manager.js';
import { acceptPeer, connectPeer, Link, WireError } from '../../runtime/distributed/wire.js';
import { waitFor } from '../helpers/jobs.js';
import { emptySlotInit } from '../helpers/slot-init.js';
import { freePort } from '../setup/redis.js';

const TOKEN = 'heartbeat-test-token';
const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `done()` holds (test/helpers/jobs.ts's waitFor, with this file's default timeout). */
function until(done: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  return waitFor(done, what, { timeoutMs, pollMs: 10 });
}

/** A job manager pool with one fake task manager (this test speaks for it). */
async function poolWithFakeTaskManager(heartbeat: { intervalMs: number; timeoutMs: number }) {
  const port = await freePort();
  const log: string[] = [];
  const listening = TaskManagerPool.listen(`127.0.0.1:${port}`, TOKEN, 1, {
    heartbeatIntervalMs: heartbeat.intervalMs,
    heartbeatTimeoutMs: heartbeat.timeoutMs,
    log: (l) => log.push(l),
  });
  const tm = await connectPeer('127.0.0.1', port, TOKEN, {
    role: 'taskmanager',
    slots: 2,
    dataHost: '127.0.0.1',
    dataPort: 1,
  });
  const pool = await listening;
  closers.push(
    () => pool.close(),
    () => tm.close(),
  );
  const received: ToTaskManager[] = [];
  tm.on('message', (m: ToTaskManager) => received.push(m));
  let closed = false;
  tm.on('close', () => (closed = true));
  return { pool, tm, log, received, closed: () => closed };
}

function recordingEvents(): SlotEvents & { exits: [number, string][]; messages: number } {
  const e = {
    exits: [] as [number, string][],
    messages: 0,
    message: () => {
      e.messages++;
    },
    exit: (slot: number, reason: string) => {
      e.exits.push([slot, reason]);
    },
  };
  return e;
}

describe('heartbeats: the job manager side', () => {
  test('a task manager that answers stays; one that falls silent is given up and its slots exit', async () => {
    const { pool, tm, log, received, closed } = await poolWithFakeTaskManager({
      intervalMs: 100,
      timeoutMs: 1000,
    });
    let lastAnswer = 0;
    const answer = (m: ToTaskManager) => {
      if (m.type !== 'heartbeat') return;
      tm.send({ type: 'heartbeat' } satisfies FromTaskManager);
      lastAnswer = Date.now();
    };
    tm.on('message', answer);
    const events = recordingEvents();
    pool.start([emptySlotInit(0), emptySlotInit(1)], events);
    // Answering, it lives well past the timeout; each heartbeat says the timeout.
    await sleep(2000);
    expect(closed()).toBe(false);
    expect(pool.slots).toBe(2);
    const beats = received.filter((m) => m.type === 'heartbeat');
    expect(beats.length).toBeGreaterThan(10);
    expect(beats[0]).toEqual({ type: 'heartbeat', timeoutMs: 1000 });
    // Silent (the connection stays open, as behind a cut link): given up after the timeout.
    tm.off('message', answer);
    await until(closed, 'the job manager to close the connection');
    expect(Date.now() - lastAnswer).toBeGreaterThanOrEqual(1000);
    expect(pool.slots).toBe(0);
    expect(log.join('\n')).toMatch(
      /task manager 1 \(.*\) missed its heartbeats: nothing heard from it for \d+ ms; giving it up/,
    );
    await until(() => events.exits.length === 2, 'both slots to exit');
    expect(events.exits.map(([s]) => s)).toEqual([0, 1]);
    expect(events.exits[0]![1]).toMatch(/task manager 1 .* missed its heartbeats: .* \(slot 0\)/);
  });

  test('any message counts as a sign of life; messages of an earlier deployment are dropped', async () => {
    const { pool, tm, received, closed } = await poolWithFakeTaskManager({
      intervalMs: 100,
      timeoutMs: 1000,
    });
    // Slot messages instead of heartbeat answers keep it alive.
    const first = recordingEvents();
    pool.start([emptySlotInit(0)], first);
    const second = recordingEvents();
    await until(() => received.some((m) => m.type === 'deploy'), 'the deployment');
    pool.start([emptySlotInit(0)], second);
    await until(() => received.filter((m) => m.type === 'deploy').length === 2, 'the second deployment');
    const deployments = received.flatMap((m) => (m.type === 'deploy' ? [m.deployment] : []));
    expect(deployments).toEqual([1, 2]);
    for (let i = 0; i < 30; i++) {
      tm.send({
        type: 'slot',
        deployment: 2,
        slot: 0,
        message: { type: 'metrics', subtasks: [] },
      } satisfies FromTaskManager);
      await sleep(50);
    }
    expect(closed()).toBe(false);
    expect(second.messages).toBe(30);
    // A slot of deployment 1 that reports late (it was stopping when the restart was decided).
    tm.send({ type: 'exit', deployment: 1, slot: 0, reason: 'stale' } satisfies FromTaskManager);
    tm.send({ type: 'exit', deployment: 2, slot: 0, reason: 'current' } satisfies FromTaskManager);
    await until(() => second.exits.some(([, r]) => r === 'current'), 'the exit of deployment 2');
    expect(second.exits).toEqual([[0, 'current']]);
  });

  test('the heartbeat timeout must be longer than the interval', async () => {
    await expect(
      TaskManagerPool.listen(`127.0.0.1:${await freePort()}`, TOKEN, 1, {
        heartbeatIntervalMs: 1000,
        heartbeatTimeoutMs: 1000,
      }),
    ).rejects.toThrow('the heartbeat timeout (1000 ms) must be longer than the heartbeat interval (1000 ms)');
  });
});

/** A fake job manager: accepts task managers and hands their links to the test, in order. */
async function fakeJobManager(port?: number): Promise<{
  port: number;
  next: () => Promise<Link>;
  server: Server;
}> {
  const chosen = port ?? (await freePort());
  const links: Link[] = [];
  const waiting: ((l: Link) => void)[] = [];
  const server = createServer((socket) => {
    const link = new Link(socket, 'task manager');
    acceptPeer(link, TOKEN).then(
      () => {
        const w = waiting.shift();
        if (w !== undefined) w(link);
        else links.push(link);
      },
      () => link.close(),
    );
  });
  await new Promise<void>((r) => server.listen(chosen, '127.0.0.1', () => r()));
  closers.push(() => server.close());
  return {
    port: chosen,
    server,
    next: () => {
      const l = links.shift();
      return l !== undefined ? Promise.resolve(l) : new Promise<Link>((r) => waiting.push(r));
    },
  };
}

/** Settles to 'resolved' or the error. */
function outcome(p: Promise<void>): Promise<'resolved' | Error> {
  return p.then(
    () => 'resolved' as const,
    (e: unknown) => e as Error,
  );
}

describe('heartbeats: the task manager side', () => {
  test('a task manager whose job manager falls silent stops its slots and registers again', async () => {
    const jm = await fakeJobManager();
    const lines: string[] = [];
    const running = outcome(
      runTaskManager({
        jobManager: `127.0.0.1:${jm.port}`,
        slots: 1,
        token: TOKEN,
        log: (l) => lines.push(l),
      }),
    );
    const link = await jm.next();
    closers.push(() => link.close());
    const answers: FromTaskManager[] = [];
    link.on('message', (m: FromTaskManager) => answers.push(m));
    // Heartbeats every 100 ms for two seconds: it answers each and stays.
    let lastSent = 0;
    for (let i = 0; i < 20; i++) {
      link.send({ type: 'heartbeat', timeoutMs: 1000 } satisfies ToTaskManager);
      lastSent = Date.now();
      await sleep(100);
    }
    await until(() => answers.filter((m) => m.type === 'heartbeat').length === 20, 'an answer to each');
    // Then nothing, on a connection still open: it gives the job manager up and comes back.
    const again = await jm.next();
    closers.push(() => again.close());
    expect(Date.now() - lastSent).toBeGreaterThanOrEqual(1000);
    expect(lines.join('\n')).toMatch(
      new RegExp(
        `lost the job manager at 127\\.0\\.0\\.1:${jm.port}: nothing heard from it for \\d+ ms \\(heartbeat timeout 1000 ms\\); stopping the slots and looking for the job manager again`,
      ),
    );
    // Told that the job ended, it ends.
    again.send({ type: 'shutdown', reason: "job 'j' finished" } satisfies ToTaskManager);
    expect(await running).toBe('resolved');
    expect(lines.at(-1)).toBe("the job manager ended: job 'j' finished");
  });

  test('a job manager that closes the connection is looked for again; a shutdown ends the task manager', async () => {
    const jm = await fakeJobManager();
    const dataPort = await freePort();
    const running = outcome(
      runTaskManager({ jobManager: `127.0.0.1:${jm.port}`, slots: 1, token: TOKEN, dataPort }),
    );
    const link = await jm.next();
    // Another task manager's data connection, whose end never closes (it is behind a cut link).
    const peer = await connectPeer('127.0.0.1', dataPort, TOKEN, { role: 'peer', from: 1 });
    closers.push(() => peer.close());
    let peerClosed = false;
    peer.on('close', () => (peerClosed = true));
    link.send({ type: 'heartbeat', timeoutMs: 400 } satisfies ToTaskManager);
    await sleep(50);
    link.close();
    const again = await jm.next();
    again.send({ type: 'shutdown', reason: 'done' } satisfies ToTaskManager);
    expect(await running).toBe('resolved');
    // The task manager closed it: an open connection would have kept its process running.
    await until(() => peerClosed, 'the data connection to close');
  });

  test('a task manager started before its job manager listens registers once it does', async () => {
    const port = await freePort();
    const lines: string[] = [];
    const running = outcome(
      runTaskManager({ jobManager: `127.0.0.1:${port}`, slots: 2, token: TOKEN, log: (l) => lines.push(l) }),
    );
    await until(() => lines.some((l) => l.includes('ECONNREFUSED')), 'a refused connection');
    await sleep(1500);
    // Retried with backoff, logged once (the same failure is not logged again and again).
    expect(lines.filter((l) => l.startsWith('no job manager to register with yet'))).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^no job manager to register with yet \\(cannot connect to 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*\\); trying again$`,
      ),
    );
    const jm = await fakeJobManager(port);
    const link = await jm.next();
    link.send({ type: 'shutdown', reason: 'done' } satisfies ToTaskManager);
    expect(await running).toBe('resolved');
    expect(lines.join('\n')).toContain(`joined the job manager at 127.0.0.1:${port} with 2 slots`);
  });

  test('several job manager addresses: the one that listens is joined', async () => {
    const [down, up] = [await freePort(), await fakeJobManager()];
    const running = outcome(
      runTaskManager({ jobManager: `127.0.0.1:${down}, 127.0.0.1:${up.port}`, slots: 1, token: TOKEN }),
    );
    const link = await up.next();
    link.send({ type: 'shutdown', reason: 'done' } satisfies ToTaskManager);
    expect(await running).toBe('resolved');
  });

  test('a registration timeout bounds the search; a wrong token fails at once', async () => {
    const port = await freePort();
    const started = Date.now();
    const timedOut = await outcome(
      runTaskManager({ jobManager: `127.0.0.1:${port}`, slots: 1, token: TOKEN, registrationTimeoutMs: 700 }),
    );
    expect(timedOut).toBeInstanceOf(WireError);
    expect((timedOut as Error).message).toMatch(
      new RegExp(
        `^no job manager accepted this task manager within 700 ms \\(cannot connect to 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`,
      ),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    const jm = await fakeJobManager();
    const refused = await outcome(
      runTaskManager({ jobManager: `127.0.0.1:${jm.port}`, slots: 1, token: 'a-wrong-token' }),
    );
    expect(refused).toBeInstanceOf(WireError);
    expect((refused as Error).message).toMatch(/refused the connection: authentication failed: wrong token/);
  });

  test('the leader found in the high-availability store is joined, and looked up again after it is lost', async () => {
    const first = await fakeJobManager();
    const second = await fakeJobManager();
    let leader: string | undefined;
    const lines: string[] = [];
    const running = outcome(
      runTaskManager({
        findJobManager: async () => {
          if (leader === undefined) throw new Error("no job manager leads job 'j' yet");
          return leader;
        },
        slots: 1,
        token: TOKEN,
        log: (l) => lines.push(l),
      }),
    );
    await until(() => lines.some((l) => l.includes("no job manager leads job 'j' yet")), 'a lookup');
    leader = `127.0.0.1:${first.port}`;
    const a = await first.next();
    leader = `127.0.0.1:${second.port}`;
    a.close();
    const b = await second.next();
    b.send({ type: 'shutdown', reason: 'done' } satisfies ToTaskManager);
    expect(await running).toBe('resolved');
    expect(lines.join('\n')).toContain(`joined the job manager at 127.0.0.1:${second.port}`);
  });
});
