// One checkpointed keyed job, a job manager and two task managers as separate processes, with a
// fault in the middle of the run: on hosts of their own (network namespaces, as root) a task
// manager's link is cut and later restored; on loopback a task manager is killed with SIGKILL.
// Either way the job restarts from its latest checkpoint (in Redis), on the task manager that
// came back (the restart waits for the slot it lacks) or, when none does within the slot request
// timeout, on the one left; its Redis sink holds every record exactly once, each key's running
// count 1..n once.
// (multi-process.test.ts loses a task manager too, with a spare one, checkpoints in files and a
// file sink; here the one left runs both subtasks of every operator in its one slot.)
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, onTestFailed, test } from 'vitest';
import { BIN, ROOT } from '../helpers/cli.js';
import { waitFor } from '../helpers/jobs.js';
import { createTestNetwork, netnsUnavailable, type TestNetwork } from '../setup/netns.js';
import { freePort, type RedisTestServer, startRedis } from '../setup/redis.js';

const TOKEN = 'several-hosts-test-token';
const KEYS = 20;
const COUNT = 12_000;
const JOB_ID = 'counts';

// NOTE: inside the package, so that `import ... from 'tidemark'` resolves in every process.
const dir = mkdtempSync(join(ROOT, 'test', '.tmp-hosts-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// About 8 s at full rate: long enough to cut a link or kill a process after a few checkpoints.
const job = join(dir, 'counts.mts');
writeFileSync(
  job,
  `import { RedisSink, job } from 'tidemark';
const prefix = process.env.PREFIX;
export default job((env) => {
  env.fromGenerator((i) => ({ k: prefix + ':out:' + (i % ${KEYS}), i, n: 1 }), { count: ${COUNT}, ratePerSecond: 1500 })
    .uid('numbers')
    .keyBy((e) => e.k)
    .reduce((a, b) => ({ k: a.k, i: b.i, n: a.n + 1 }))
    .uid('counts')
    .sinkTo(RedisSink.stream('counts', {
      connection: { url: process.env.SINK_URL },
      markerPrefix: prefix + ':m',
      key: (e) => e.k,
      fields: (e) => ({ i: e.i, n: e.n }),
    }));
});
`,
);

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

/** Starts `command args` (the CLI, possibly inside a namespace) with the job's environment. */
function start(command: string, args: string[], env: Record<string, string>): Started {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env, TIDEMARK_TOKEN: TOKEN },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return { child, stderr: () => err, exit: new Promise((r) => child.once('exit', (code) => r(code))) };
}

/** Polls until `done()` holds (test/helpers/jobs.ts's waitFor, with this file's default timeout). */
function until(done: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  return waitFor(done, what, { timeoutMs, pollMs: 25 });
}

/** The job manager's arguments: checkpoints to Redis every 300 ms, quick restarts. */
function jobManagerArgs(listen: string, storageUrl: string, extra: string[] = []): string[] {
  return [
    BIN,
    'run',
    job,
    '-p',
    '2',
    '--job-id',
    JOB_ID,
    '--listen',
    listen,
    '--task-managers',
    '2',
    '--checkpoint-interval',
    '300ms',
    '--checkpoint-storage',
    storageUrl,
    '--restart-strategy',
    'fixed-delay:3:200ms',
    ...extra,
  ];
}

/** The id of the job's latest complete checkpoint (0 before the first). */
async function latestCheckpoint(client: Redis, storagePrefix: string): Promise<number> {
  return Number((await client.get(`${storagePrefix}:{${JOB_ID}}:latest`)) ?? 0);
}

async function written(client: Redis, prefix: string): Promise<number> {
  let n = 0;
  for (let k = 0; k < KEYS; k++) n += await client.xlen(`${prefix}:out:${k}`);
  return n;
}

/** Every record once; per key, the running counts 1..n, each once and in order. */
async function expectExactlyOnce(client: Redis, prefix: string): Promise<void> {
  const seen: number[] = [];
  for (let k = 0; k < KEYS; k++) {
    const rows = (await client.xrange(`${prefix}:out:${k}`, '-', '+')).map(([, fields]) => {
      const f = new Map<string, string>();
      for (let j = 0; j < fields.length; j += 2) f.set(fields[j]!, fields[j + 1]!);
      return { i: Number(f.get('i')), n: Number(f.get('n')) };
    });
    expect(
      rows.map((r) => r.n),
      `key ${k}`,
    ).toEqual(Array.from({ length: rows.length }, (_x, j) => j + 1));
    for (const r of rows) {
      expect(r.i % KEYS, `record ${r.i} under key ${k}`).toBe(k);
      seen.push(r.i);
    }
  }
  expect(seen.length).toBe(COUNT);
  expect(new Set(seen).size).toBe(COUNT);
}

/** On failure, prints what each process wrote to standard error. */
function printOnFailure(processes: () => Record<string, Started>): void {
  onTestFailed(() => {
    for (const [name, p] of Object.entries(processes())) console.log(`--- ${name}:\n${p.stderr()}`);
  });
}

const unavailable = netnsUnavailable();
const skipReason = `skipped: ${unavailable}; network namespaces need root and CAP_NET_ADMIN`;
if (unavailable !== undefined) console.log(`several hosts in network namespaces: ${skipReason}`);

describe.skipIf(unavailable !== undefined)(
  `several hosts: network namespaces on one machine${unavailable === undefined ? '' : ` (${skipReason})`}`,
  () => {
    let network: TestNetwork;
    let redis: RedisTestServer;
    let client: Redis;
    beforeAll(async () => {
      network = createTestNetwork(['jm', 'a', 'b']);
      redis = await startRedis({ host: network.hostAddress });
      client = new Redis(redis.url);
    });
    afterAll(async () => {
      for (const c of children) c.kill('SIGKILL');
      client?.disconnect();
      network?.destroy();
      await redis?.stop();
    });

    test('a task manager whose link is cut is given up; the job restarts once it is back, exactly once', async () => {
      const prefix = `netns-${randomUUID()}`;
      const env = { PREFIX: prefix, SINK_URL: redis.url };
      const { jm: jmHost, a, b } = network.hosts as Record<'jm' | 'a' | 'b', { address: string }>;
      const listen = `${jmHost.address}:6123`;
      const node = (role: string, args: string[]) =>
        start(...network.exec(role, process.execPath, args), env);
      const jm = node(
        'jm',
        jobManagerArgs(listen, `${redis.url}/?prefix=${prefix}`, [
          '--heartbeat-interval',
          '200ms',
          '--heartbeat-timeout',
          '2s',
          '--slot-request-timeout',
          '40s',
        ]),
      );
      await until(() => jm.stderr().includes('waiting for 2 task manager'), 'the job manager to listen');
      // Each task manager tells the other its own address for records (its namespace's).
      const tms = {
        a: node('a', [BIN, 'taskmanager', '--job-manager', listen, '--slots', '1', '--data-host', a.address]),
        b: node('b', [BIN, 'taskmanager', '--job-manager', listen, '--slots', '1', '--data-host', b.address]),
      };
      printOnFailure(() => ({ jm, ...tms }));
      await until(
        async () => (await latestCheckpoint(client, prefix)) >= 3 && (await written(client, prefix)) > 0,
        'three checkpoints and the first commits',
      );
      network.cut('a');
      // Down until both sides gave up: the job manager on the task manager, which stopped its slots.
      await until(
        () => /task manager \d .* missed its heartbeats/.test(jm.stderr()),
        'the job manager to give up task manager a',
      );
      await until(
        () => /stopping the slots and looking for the job manager again/.test(tms.a.stderr()),
        'task manager a to give up the job manager',
      );
      const during = await written(client, prefix);
      network.restore('a');
      // The restart waits for the slot it lacks: task manager a comes back and brings it.
      expect(await jm.exit).toBe(0);
      expect(await tms.a.exit).toBe(0);
      expect(await tms.b.exit).toBe(0);
      // Every process ran in its own namespace and reached the others at their addresses.
      expect(jm.stderr()).toContain(`(${a.address}:`);
      expect(jm.stderr()).toContain(`(${b.address}:`);
      // The task manager was given up in the middle of the run.
      expect(during).toBeLessThan(COUNT);
      expect(jm.stderr()).toMatch(
        /restarting \(attempt 1\) in 200 ms from checkpoint \d+ after: .*task manager \d .* missed its heartbeats: nothing heard from it for \d+ ms \(slot \d\)/,
      );
      expect(jm.stderr()).not.toMatch(/attempt 2/);
      expect(tms.a.stderr()).toMatch(
        /lost the job manager at .*: nothing heard from it for \d+ ms \(heartbeat timeout 2000 ms\)/,
      );
      // The restart waited for the slot it lacked, unless the task manager was back first.
      expect(jm.stderr()).toMatch(
        /the job needs 2 slots and the task managers connected have 1: waiting|restarting \(attempt 1\)[^\n]*\n(?:[^\n]*\n)*\[counts\] task manager \d \([^)]*\) joined\n(?:[^\n]*\n)*\[counts\] restored from checkpoint/,
      );
      expect(tms.a.stderr().match(/deployed slots/g)).toHaveLength(2);
      await expectExactlyOnce(client, prefix);
    }, 60_000);
  },
);

describe('several hosts: task managers on loopback', () => {
  test('a task manager killed with SIGKILL mid-run; the job restarts on the other, exactly once', async () => {
    const url = inject('redisUrl');
    const client = new Redis(url);
    try {
      const prefix = `loopback-${randomUUID()}`;
      const env = { PREFIX: prefix, SINK_URL: url };
      const listen = `127.0.0.1:${await freePort()}`;
      // No task manager replaces the one killed: after the slot request timeout, the restart runs
      // on the slot left.
      const jm = start(
        process.execPath,
        jobManagerArgs(listen, `${url}/?prefix=${prefix}`, ['--slot-request-timeout', '1s']),
        env,
      );
      await until(() => jm.stderr().includes('waiting for 2 task manager'), 'the job manager to listen');
      const tms = [0, 1].map(() =>
        start(process.execPath, [BIN, 'taskmanager', '--job-manager', listen, '--slots', '1'], env),
      );
      printOnFailure(() => ({ jm, tm0: tms[0]!, tm1: tms[1]! }));
      await until(
        async () => (await latestCheckpoint(client, prefix)) >= 3 && (await written(client, prefix)) > 0,
        'three checkpoints and the first commits',
      );
      const victim = tms.find((t) => t.stderr().includes('deployed slots 0 '))!;
      victim.child.kill('SIGKILL');
      const during = await written(client, prefix);
      expect(await jm.exit).toBe(0);
      expect(during).toBeLessThan(COUNT);
      // The first to report the loss names it: the job manager seeing the connection close, or the
      // survivor's slot failing to reach slot 0's task manager for its channels (a race: both name
      // slot 0; CI saw each).
      expect(jm.stderr()).toMatch(
        /restarting \(attempt 1\) in 200 ms from checkpoint \d+ after: .*(task manager \d .* disconnected \(slot 0\)|cannot reach the task manager of slot 0 at )/,
      );
      expect(jm.stderr()).not.toMatch(/attempt 2/);
      expect(jm.stderr()).toMatch(/no more slots came within 1000 ms: running on 1 of 2 slots/);
      // The one left ran both subtasks of every operator in its one slot.
      const survivor = tms.find((t) => t !== victim)!;
      expect(survivor.stderr()).toMatch(/deployed slots 0 of job module/);
      expect(await survivor.exit).toBe(0);
      await expectExactlyOnce(client, prefix);
    } finally {
      client.disconnect();
    }
  }, 60_000);
});
