// The job manager's REST API and Prometheus metrics against a real running job (tidemark run
// --web-port), in one thread, on two slots, and on two task-manager processes: paths, fields,
// status codes and bad input; a watermark held back by a silent input named as such; late
// records counted; checkpoints with per-subtask figures; the job commands from another directory.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type {
  CheckpointDetails,
  CheckpointsResponse,
  ExceptionsResponse,
  JobDetails,
  JobsResponse,
  RuntimeResponse,
  SavepointStatus,
  TailEvent,
  VertexBackPressure,
  VertexDetails,
  VertexWatermarks,
} from '../../runtime/observe/types.js';
import { BIN, ROOT, runCli } from '../helpers/cli.js';
import { freePort } from '../setup/redis.js';

// NOTE: inside the package, so that `import ... from 'tidemark'` resolves in every process.
const dir = mkdtempSync(join(ROOT, 'test', '.tmp-rest-'));
const elsewhere = mkdtempSync(join(tmpdir(), 'tidemark-rest-cwd-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  rmSync(elsewhere, { recursive: true, force: true });
});

const TOKEN = 'web-token-for-tests';
const tokenFile = join(dir, 'web-token');
writeFileSync(tokenFile, `${TOKEN}\n`);

// Two pipelines: a busy source whose every 25th record is 20 s old (late in 500 ms windows), and
// the union of another busy source with a silent one (one record, then nothing for ever) whose
// watermark holds the window behind it back.
const job = join(dir, 'watched.mts');
writeFileSync(
  job,
  `import { job, TumblingEventTimeWindows, WatermarkStrategy } from 'tidemark';
const wm = WatermarkStrategy.forBoundedOutOfOrderness(0).withTimestampAssigner((e) => e.ts);
export default job((env) => {
  env.fromGenerator((i) => ({ k: 'k' + (i % 4), ts: Date.now() - (i % 25 === 0 ? 20000 : 0) }), { ratePerSecond: 400, watermarks: wm })
    .uid('lateish').name('lateish')
    .keyBy((e) => e.k)
    .window(TumblingEventTimeWindows.of(500))
    .reduce((a, b) => ({ k: a.k, ts: Math.max(a.ts, b.ts) }))
    .uid('late-windows').name('late windows')
    .addSink(() => {});
  const busy = env.fromGenerator((i) => ({ k: 'b' + (i % 4), ts: Date.now() }), { ratePerSecond: 400, watermarks: wm })
    .uid('busy').name('busy');
  const silent = env.fromGenerator((i) => ({ k: 's', ts: Date.now() }), { count: 4, ratePerSecond: 0.001, watermarks: wm })
    .uid('silent').name('silent');
  busy.union(silent)
    .keyBy((e) => e.k)
    .window(TumblingEventTimeWindows.of(500))
    .reduce((a, b) => b)
    .uid('held-windows').name('held windows')
    .addSink(() => {});
}, { name: 'watched' });
`,
);

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

function start(args: string[], env: NodeJS.ProcessEnv = {}): Started {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return { child, stderr: () => err, exit };
}

async function until<T>(
  what: string,
  read: () => Promise<T | undefined> | T | undefined,
  ms = 40_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function dashboardUrl(s: Started): Promise<string> {
  return until(
    `the dashboard line (stderr: ${s.stderr()})`,
    () => /dashboard: (http:\/\/\S+)/.exec(s.stderr())?.[1],
  );
}

async function get<T>(base: string, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base.replace(/\/$/, '')}${path}`);
  return { status: res.status, body: (await res.json()) as T };
}

async function send(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: string; origin?: string } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(`${base.replace(/\/$/, '')}${path}`, {
    method,
    headers: {
      ...(options.token === undefined ? {} : { Authorization: `Bearer ${options.token}` }),
      ...(options.origin === undefined ? {} : { Origin: options.origin }),
      'Content-Type': 'application/json',
    },
    ...(options.body === undefined ? {} : { body: options.body }),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

/** What a live tail sent: its status, content type, events, and the `end` event's data if it came. */
interface TailRead {
  status: number;
  contentType: string;
  events: TailEvent[];
  ended: { state: string } | undefined;
  /** Milliseconds from the response to the last event read. */
  elapsedMs: number;
  body: string;
}

/**
 * Follows a live tail (server-sent events, with node:http) for `ms` or until it ends; `until`
 * stops reading earlier.
 */
function readTail(
  base: string,
  path: string,
  ms: number,
  until?: (r: TailRead) => boolean,
): Promise<TailRead> {
  return new Promise((resolve, reject) => {
    const req = httpGet(new URL(path, base), (res) => {
      const started = Date.now();
      const read: TailRead = {
        status: res.statusCode ?? 0,
        contentType: String(res.headers['content-type']),
        events: [],
        ended: undefined,
        elapsedMs: 0,
        body: '',
      };
      let buffer = '';
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        read.elapsedMs = Date.now() - started;
        req.destroy();
        resolve(read);
      };
      const timer = setTimeout(finish, ms);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        read.body += chunk;
        if (read.status !== 200) return;
        buffer += chunk;
        for (let i = buffer.indexOf('\n\n'); i >= 0; i = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length === 0) continue;
          if (event === 'end') read.ended = JSON.parse(data.join('\n')) as { state: string };
          else read.events.push(JSON.parse(data.join('\n')) as TailEvent);
        }
        if (until?.(read) === true) finish();
      });
      res.on('end', finish);
      res.on('error', finish);
    });
    req.on('error', reject);
  });
}

/** The live tail of the busy source: its records, with their event times, at most `rate` a second. */
async function checkTail(base: string, sourceId: number, parallelism: number): Promise<void> {
  const rate = 5;
  const tail = await readTail(base, `/jobs/watched/vertices/${sourceId}/tail?rate=${rate}`, 3000);
  expect(tail.status).toBe(200);
  expect(tail.contentType).toMatch(/^text\/event-stream/);
  expect(tail.events.length).toBeGreaterThanOrEqual(5);
  // Throttled: at most `rate` in any second (the reading lasts about 3 s).
  expect(tail.events.length).toBeLessThanOrEqual(rate * 4);
  const skipped = tail.events.reduce((a, e) => a + e.skipped, 0);
  // The source emits 400 records a second: most are skipped, and said so.
  expect(skipped).toBeGreaterThan(tail.events.length * 10);
  for (const e of tail.events) {
    const value = e.value as { k: string; ts: number };
    expect(value.k).toMatch(/^b[0-3]$/);
    expect(e.timestamp).toBe(value.ts);
    expect(e.subtaskIndex).toBeGreaterThanOrEqual(0);
    expect(e.subtaskIndex).toBeLessThan(parallelism);
  }
  // Every subtask's records are captured (on slots and task managers too).
  expect(new Set(tail.events.map((e) => e.subtaskIndex)).size).toBe(parallelism);
  // Two listeners at once, each with its own rate.
  const [a, b] = await Promise.all([
    readTail(base, `/jobs/watched/vertices/${sourceId}/tail?rate=2`, 2500),
    readTail(base, `/jobs/watched/vertices/${sourceId}/tail?rate=20`, 2500),
  ]);
  expect(a.events.length).toBeGreaterThan(0);
  expect(a.events.length).toBeLessThanOrEqual(2 * 3.5);
  expect(b.events.length).toBeGreaterThan(a.events.length);
  // Bad vertex, bad rate.
  const missing = await readTail(base, '/jobs/watched/vertices/99/tail', 2000);
  expect(missing.status).toBe(404);
  expect(JSON.parse(missing.body)).toMatchObject({ status: 404 });
  expect((await readTail(base, `/jobs/watched/vertices/${sourceId}/tail?rate=0`, 2000)).status).toBe(400);
  expect((await readTail(base, `/jobs/watched/vertices/${sourceId}/tail?rate=x`, 2000)).status).toBe(400);
}

/** Node's own figures: the job manager's thread, and each slot's (with its process on task managers). */
async function checkRuntime(base: string, mode: string): Promise<void> {
  const { status, body: rt } = await get<RuntimeResponse>(base, '/jobs/watched/runtime');
  expect(status).toBe(200);
  const plausible = (s: RuntimeResponse['slots'][number]['thread']) => {
    expect(s.heap.usedBytes).toBeGreaterThan(1_000_000);
    expect(s.heap.usedBytes).toBeLessThanOrEqual(s.heap.totalBytes);
    expect(s.heap.limitBytes).toBeGreaterThan(s.heap.totalBytes);
    expect(s.rssBytes).toBeGreaterThan(s.heap.usedBytes);
    expect(s.eventLoopDelayMs.p99).toBeGreaterThanOrEqual(s.eventLoopDelayMs.p50);
    expect(s.eventLoopDelayMs.p99).toBeLessThan(10_000);
    expect(s.eventLoopUtilization).toBeGreaterThanOrEqual(0);
    expect(s.eventLoopUtilization).toBeLessThanOrEqual(1);
    expect(s.gc.pauseMs).toBeGreaterThanOrEqual(0);
  };
  expect(rt.jobManager).not.toBeNull();
  expect(rt.jobManager!.thread).toBe('main');
  plausible(rt.jobManager!);
  const slots = await until('figures of every slot', async () => {
    const { body } = await get<RuntimeResponse>(base, '/jobs/watched/runtime');
    return body.slots.length === (mode === 'local' ? 0 : 2) ? body.slots : undefined;
  });
  for (const s of slots) {
    expect(s.thread.thread).toBe('worker');
    plausible(s.thread);
    if (mode === 'cluster') {
      expect(s.taskManager).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(s.process!.thread).toBe('main');
      expect(s.process!.pid).not.toBe(rt.jobManager!.pid);
    } else {
      expect(s.taskManager).toBeNull();
      expect(s.process).toBeUndefined();
      expect(s.thread.pid).toBe(rt.jobManager!.pid);
    }
  }
  const metrics = await (await fetch(`${base}metrics`)).text();
  expect(metrics).toMatch(
    /tidemark_node_heap_used_bytes\{job_id="watched",job_name="watched",component="jobmanager"\} [1-9]/,
  );
  expect(metrics).toMatch(/tidemark_node_event_loop_delay_p99_seconds\{[^}]*component="jobmanager"\} \d/);
  if (mode !== 'local') {
    expect(metrics).toMatch(/tidemark_node_heap_used_bytes\{[^}]*component="slot",slot="1"[^}]*\} [1-9]/);
    expect(metrics).toMatch(
      /tidemark_node_gc_pause_seconds_per_second\{[^}]*component="slot",slot="0"[^}]*\} \d/,
    );
  }
  if (mode === 'cluster')
    expect(metrics).toMatch(
      /tidemark_node_rss_bytes\{[^}]*component="taskmanager",task_manager="127\.0\.0\.1:\d+"\} [1-9]/,
    );
}

/** The checks every placement passes: the held watermark, late records, checkpoints, metrics. */
async function checkRunningJob(base: string, expectedMode: string): Promise<void> {
  const { body: jobs } = await get<JobsResponse>(base, '/jobs');
  expect(jobs.jobs.map((j) => j.id)).toEqual(['watched']);
  expect(jobs.jobs[0]!.mode).toBe(expectedMode);

  const details = await until('running subtasks with records', async () => {
    const { body } = await get<JobDetails>(base, '/jobs/watched');
    return body.state === 'RUNNING' &&
      body.vertices.every((v) => v.tasks.RUNNING === v.parallelism) &&
      body.vertices.some((v) => v.metrics.numRecordsOutPerSecond > 0)
      ? body
      : undefined;
  });
  const held = details.vertices.find((v) => v.name.startsWith('held windows'))!;
  const late = details.vertices.find((v) => v.name.startsWith('late windows'))!;
  expect(held).toBeDefined();
  expect(late).toBeDefined();

  // The silent source's channel holds the window's watermark: named as an idle input.
  const wms = await until('a stall of the held windows', async () => {
    const { body } = await get<VertexWatermarks>(base, `/jobs/watched/vertices/${held.id}/watermarks`);
    return body.stall !== null ? body : undefined;
  });
  expect(wms.stall!.reason).toBe('idle-input');
  expect(wms.stall!.input).toMatch(/^Source: silent/);
  expect(wms.stall!.message).toContain('not marked idle');
  const sub = wms.subtasks.find((s) => s.stall !== null)!;
  expect(sub.heldBy).not.toBeNull();
  const holder = sub.inputs[sub.heldBy!]!;
  expect(holder.holdsMinimum).toBe(true);
  expect(holder.kind).toBe('channel');
  expect(holder.name).toMatch(/^Source: silent/);
  expect(holder.lastRecordAgeMs === null || holder.lastRecordAgeMs >= 2000).toBe(true);
  const busyInput = sub.inputs.find((i) => i.name.startsWith('Source: busy'))!;
  expect(busyInput.numRecords).toBeGreaterThan(0);
  expect(busyInput.lastRecordAgeMs).toBeLessThan(2000);
  expect(busyInput.watermark).toBeGreaterThan(holder.watermark ?? Number.NEGATIVE_INFINITY);

  // Sources: per split watermarks.
  const sourceVertex = details.vertices.find((v) => v.name.startsWith('Source: busy'))!;
  const { body: srcWm } = await get<VertexWatermarks>(
    base,
    `/jobs/watched/vertices/${sourceVertex.id}/watermarks`,
  );
  expect(srcWm.subtasks[0]!.inputs[0]!.kind).toBe('split');
  expect(srcWm.currentOutputWatermark).toBeGreaterThan(0);

  // Late records are counted.
  await until('late records dropped', async () => {
    const { body } = await get<VertexDetails>(base, `/jobs/watched/vertices/${late.id}`);
    return body.metrics.numLateRecordsDropped > 0 ? body : undefined;
  });
  const { body: vd } = await get<VertexDetails>(base, `/jobs/watched/vertices/${late.id}`);
  expect(vd.subtasks).toHaveLength(late.parallelism);
  expect(vd.subtasks[0]!.operators[0]!.metrics.numLateRecordsDropped).toBeTypeOf('number');
  expect(
    vd.subtasks[0]!.metrics.busyTimeMsPerSecond + vd.subtasks[0]!.metrics.idleTimeMsPerSecond,
  ).toBeLessThanOrEqual(1001);

  const { body: bp } = await get<VertexBackPressure>(
    base,
    `/jobs/watched/vertices/${sourceVertex.id}/backpressure`,
  );
  expect(bp.status).toBe('ok');
  expect(['ok', 'low', 'high']).toContain(bp.backpressureLevel);
  expect(bp.subtasks).toHaveLength(sourceVertex.parallelism);

  // Checkpoints with per-subtask figures.
  const cps = await until('two completed checkpoints', async () => {
    const { body } = await get<CheckpointsResponse>(base, '/jobs/watched/checkpoints');
    return body.counts.numberOfCompletedCheckpoints >= 2 ? body : undefined;
  });
  expect(cps.config!.intervalMs).toBe(500);
  const done = cps.history.find((h) => h.status === 'COMPLETED')!;
  expect(done.sizeBytes).toBeGreaterThan(0);
  const { body: cd } = await get<CheckpointDetails>(base, `/jobs/watched/checkpoints/details/${done.id}`);
  expect(cd.numAcknowledgedSubtasks).toBe(cd.numSubtasks);
  for (const v of cd.vertices)
    for (const s of v.subtasks) {
      expect(s.status).toBe('acknowledged');
      expect(s.syncDurationMs).toBeGreaterThanOrEqual(0);
      expect(s.asyncDurationMs).toBeGreaterThanOrEqual(0);
      expect(s.startDelayMs).toBeGreaterThanOrEqual(0);
      expect(s.alignmentDurationMs).toBeGreaterThanOrEqual(0);
      expect(s.sizeBytes).toBeGreaterThanOrEqual(0);
    }

  // Prometheus.
  const metrics = await (await fetch(`${base}metrics`)).text();
  expect(metrics).toMatch(
    /tidemark_jobmanager_job_numberOfCompletedCheckpoints\{job_id="watched",job_name="watched"\} [1-9]/,
  );
  expect(metrics).toMatch(
    /tidemark_taskmanager_job_task_numRecordsOut\{job_id="watched",job_name="watched",task_name="Source: busy",vertex_id="\d+",subtask_index="0"\} [1-9]/,
  );
  expect(metrics).toMatch(
    /tidemark_taskmanager_job_task_operator_numLateRecordsDropped\{[^}]*operator_name="late windows"\} [1-9]/,
  );
  expect(metrics).toContain('tidemark_taskmanager_job_task_busyTimeMsPerSecond');

  await checkTail(base, sourceVertex.id, sourceVertex.parallelism);
  await checkRuntime(base, expectedMode);
}

describe('REST API of a job in one thread', () => {
  test('paths, fields, status codes, tokens and the job commands', async () => {
    const s = start([
      'run',
      job,
      '--checkpoint-interval',
      '500ms',
      '--web-port',
      '0',
      '--web-stall-threshold',
      '2s',
      '--web-token-file',
      tokenFile,
    ]);
    const base = await dashboardUrl(s);
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    await checkRunningJob(base, 'local');

    const { body: overview } = await get<{ jobsRunning: number; version: string }>(base, '/overview');
    expect(overview.jobsRunning).toBe(1);
    const { body: plan } = await get<{ plan: { vertices: unknown[] } }>(base, '/jobs/watched/plan');
    expect(plan.plan.vertices.length).toBeGreaterThan(3);
    const { body: exc } = await get<ExceptionsResponse>(base, '/jobs/watched/exceptions');
    expect(exc.entries).toEqual([]);

    // Bad paths, ids, methods, bodies and tokens.
    expect((await get(base, '/nope')).status).toBe(404);
    expect((await get(base, '/jobs/other')).status).toBe(404);
    expect((await get<{ errors: string[] }>(base, '/jobs/other')).body.errors[0]).toContain("no job 'other'");
    expect((await get(base, '/jobs/watched/vertices/x')).status).toBe(400);
    expect((await get(base, '/jobs/watched/vertices/99')).status).toBe(404);
    expect((await get(base, '/jobs/watched/checkpoints/details/abc')).status).toBe(400);
    expect((await get(base, '/jobs/watched/checkpoints/details/999999')).status).toBe(404);
    expect((await get(base, '/jobs/watched/savepoints/unknown')).status).toBe(404);
    const wrongMethod = await send(base, 'DELETE', '/jobs/watched');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('GET, PATCH');
    expect((await send(base, 'POST', '/jobs/watched/savepoints')).status).toBe(401);
    expect((await send(base, 'POST', '/jobs/watched/savepoints', { token: 'wrong' })).status).toBe(401);
    expect(
      (await send(base, 'POST', '/jobs/watched/savepoints', { token: TOKEN, body: '{bad' })).status,
    ).toBe(400);
    expect(
      (await send(base, 'POST', '/jobs/watched/savepoints', { token: TOKEN, body: '{"cancelJob":"yes"}' }))
        .status,
    ).toBe(400);
    expect((await send(base, 'PATCH', '/jobs/watched?mode=explode', { token: TOKEN })).status).toBe(400);
    expect((await send(base, 'PATCH', '/jobs/watched?mode=cancel')).status).toBe(401);

    // A savepoint over REST, idempotent by trigger id.
    const trig = await send(base, 'POST', '/jobs/watched/savepoints', {
      token: TOKEN,
      body: '{"triggerId":"sp-1"}',
    });
    expect(trig.status).toBe(202);
    expect(trig.body).toEqual({ 'request-id': 'sp-1' });
    const sp = await until('the savepoint', async () => {
      const { body } = await get<SavepointStatus>(base, '/jobs/watched/savepoints/sp-1');
      return body.status.id === 'COMPLETED' ? body : undefined;
    });
    expect(sp.operation).toHaveProperty('savepointId');

    // The job commands, from another directory.
    const jm = new URL(base).host;
    const env = { TIDEMARK_JOB_MANAGER: jm };
    const list = await runCli(['list'], { cwd: elsewhere, env });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/watched\s+RUNNING/);
    const status = await runCli(['status', 'watched'], { cwd: elsewhere, env });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('held windows');
    expect(status.stdout).toMatch(/watermark stalled .*idle-input/);
    expect(status.stdout).toMatch(/checkpoints: \d+ completed/);
    const unknown = await runCli(['status', 'nope', '--job-manager', jm], { cwd: elsewhere });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("no job 'nope'");
    const noToken = await runCli(['savepoint', 'watched', '--job-manager', jm], { cwd: elsewhere });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('Bearer');
    const savepoint = await runCli(
      ['savepoint', 'watched', '--job-manager', jm, '--web-token-file', tokenFile],
      {
        cwd: elsewhere,
      },
    );
    expect(savepoint.stdout).toMatch(/savepoint \d+ of job 'watched' taken/);
    // A tail open when the job ends gets an `end` event, and the stream ends.
    const source = (await get<JobDetails>(base, '/jobs/watched')).body.vertices.find((v) =>
      v.name.startsWith('Source: busy'),
    )!;
    const ending = readTail(base, `/jobs/watched/vertices/${source.id}/tail`, 30_000);
    const stop = await runCli(['stop', 'watched', '--savepoint'], {
      cwd: elsewhere,
      env: { ...env, TIDEMARK_WEB_TOKEN: TOKEN },
    });
    expect(stop.stderr).toBe('');
    expect(stop.stdout).toMatch(/savepoint \d+ of job 'watched' taken; the job is stopping/);
    const ended = await ending;
    expect(ended.ended).toEqual({ state: 'CANCELED' });
    expect(ended.elapsedMs).toBeLessThan(29_000);
    expect(await s.exit).toBe(130);
  });
});

describe('REST API of a job on two slots', () => {
  test('figures gathered from the slots; cancel from loopback without a token', async () => {
    const s = start([
      'run',
      job,
      '--slots',
      '2',
      '-p',
      '2',
      '--checkpoint-interval',
      '500ms',
      '--web-port',
      '0',
      '--web-stall-threshold',
      '2s',
    ]);
    const base = await dashboardUrl(s);
    await checkRunningJob(base, 'slots');
    // A web page (any site) cannot change the job without a token: browsers send Origin.
    const forged = await send(base, 'PATCH', '/jobs/watched?mode=cancel', { origin: 'https://evil.example' });
    expect(forged.status).toBe(403);
    expect(JSON.stringify(forged.body)).toMatch(
      /from a web page \(https:\/\/evil\.example\) needs a web token/,
    );
    const cancel = await runCli(['cancel', 'watched', '--job-manager', new URL(base).host], {
      cwd: elsewhere,
    });
    expect(cancel.code).toBe(0);
    expect(await s.exit).toBe(130);
  });
});

describe('REST API of a job on two task managers', () => {
  test('figures gathered from the task managers', async () => {
    const port = await freePort();
    const jobToken = 'cluster-token';
    const s = start(
      [
        'run',
        job,
        '-p',
        '2',
        '--listen',
        `127.0.0.1:${port}`,
        '--task-managers',
        '2',
        '--checkpoint-interval',
        '500ms',
        '--web-port',
        '0',
        '--web-stall-threshold',
        '2s',
      ],
      { TIDEMARK_TOKEN: jobToken },
    );
    for (let i = 0; i < 2; i++)
      start(['taskmanager', '--job-manager', `127.0.0.1:${port}`, '--slots', '1'], {
        TIDEMARK_TOKEN: jobToken,
      });
    const base = await dashboardUrl(s);
    await checkRunningJob(base, 'cluster');
    const { body: overview } = await get<{ taskManagers: number; slotsTotal: number }>(base, '/overview');
    expect(overview.taskManagers).toBe(2);
    expect(overview.slotsTotal).toBe(2);
    const { body: jd } = await get<JobDetails>(base, '/jobs/watched');
    const { body: vd } = await get<VertexDetails>(base, `/jobs/watched/vertices/${jd.vertices[0]!.id}`);
    expect(vd.subtasks.map((x) => x.location.taskManager)).not.toContain(null);
    expect((await send(base, 'PATCH', '/jobs/watched?mode=cancel')).status).toBe(202);
    expect(await s.exit).toBe(130);
  });
});
