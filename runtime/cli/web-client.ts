/**
 * The job commands over the job manager's REST API (docs/rest-api.md): `tidemark list`,
 * `status`, `cancel`, `stop --savepoint` and `savepoint` with `--job-manager HOST:PORT` (or
 * `TIDEMARK_JOB_MANAGER`), from any directory and host. Also the web token and the package
 * version the server side uses.
 */
import { existsSync, readFileSync } from 'node:fs';
import type {
  CheckpointsResponse,
  ErrorResponse,
  JobDetails,
  JobsResponse,
  SavepointStatus,
  TriggerResponse,
  VertexWatermarks,
  WatermarkJson,
} from '../observe/types.js';
import { MAX_WATERMARK_JSON } from '../observe/types.js';
import { UsageError } from './load-job.js';

/** The package version (from source, ../../package.json; from dist/, ../../../package.json). */
export function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    const url = new URL(rel, import.meta.url);
    if (!existsSync(url)) continue;
    const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version: string };
    if (pkg.name === 'tidemark') return pkg.version;
  }
  return 'unknown';
}

/** Flags of the web token. */
export interface WebTokenFlags {
  webToken?: string | undefined;
  webTokenFile?: string | undefined;
}

/**
 * The web token: `--web-token-file` (or TIDEMARK_WEB_TOKEN_FILE), else `--web-token` (or
 * TIDEMARK_WEB_TOKEN); undefined when none is set.
 */
export function webToken(flags: WebTokenFlags): string | undefined {
  const file = flags.webTokenFile ?? process.env.TIDEMARK_WEB_TOKEN_FILE;
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (e) {
      throw new UsageError(`--web-token-file ${file}: cannot read it: ${(e as Error).message}`);
    }
    if (text === '') throw new UsageError(`--web-token-file ${file} is empty`);
    return text;
  }
  const token = flags.webToken ?? process.env.TIDEMARK_WEB_TOKEN;
  return token === undefined || token === '' ? undefined : token;
}

/** Flags of the job commands. */
export interface JobCommandFlags extends WebTokenFlags {
  jobManager?: string | undefined;
  json?: boolean | undefined;
}

/** The REST base URL of `--job-manager` (or TIDEMARK_JOB_MANAGER), or undefined if neither is set. */
export function jobManagerUrl(flags: JobCommandFlags): string | undefined {
  const raw = flags.jobManager ?? process.env.TIDEMARK_JOB_MANAGER;
  if (raw === undefined || raw === '') return undefined;
  const withScheme = /^https?:\/\//.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`--job-manager '${raw}' is not HOST:PORT (the job manager's --web-port address)`);
  }
  if (url.port === '' && !/^https?:\/\//.test(raw))
    throw new UsageError(`--job-manager '${raw}' is not HOST:PORT (the job manager's --web-port address)`);
  return url.origin;
}

function requireUrl(flags: JobCommandFlags, command: string): string {
  const url = jobManagerUrl(flags);
  if (url === undefined)
    throw new UsageError(
      `${command} needs --job-manager HOST:PORT (or TIDEMARK_JOB_MANAGER): the address of a job manager started with --web-port`,
    );
  return url;
}

/** A REST call that failed: the server's message, with its status. */
export class RestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'RestError';
  }
}

async function call<T>(
  base: string,
  method: string,
  path: string,
  flags: JobCommandFlags,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method !== 'GET') {
    const token = webToken(flags);
    if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new RestError(
      0,
      `cannot reach the job manager at ${base} (${cause?.code ?? cause?.message ?? (e as Error).message}); is it running with --web-port?`,
    );
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RestError(
      res.status,
      `${method} ${base}${path} answered ${res.status} with something not JSON`,
    );
  }
  if (!res.ok)
    throw new RestError(res.status, (parsed as ErrorResponse).errors?.join('; ') ?? `status ${res.status}`);
  return { status: res.status, body: parsed as T };
}

const job = (id: string) => `/jobs/${encodeURIComponent(id)}`;

/** The exit code of a failed REST call: 1 (2 for a usage mistake: unknown job, bad token). */
function failed(e: unknown): number {
  if (!(e instanceof RestError)) throw e;
  process.stderr.write(`tidemark: ${e.message}\n`);
  return e.status === 404 || e.status === 401 || e.status === 400 ? 2 : 1;
}

/** `tidemark list`. */
export async function listJobs(flags: JobCommandFlags): Promise<number> {
  const base = requireUrl(flags, 'list');
  try {
    const { body } = await call<JobsResponse>(base, 'GET', '/jobs', flags);
    if (flags.json === true) {
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      return 0;
    }
    const rows = [['JOB ID', 'STATE', 'UPTIME', 'RESTARTS', 'MODE', 'NAME']];
    for (const j of body.jobs)
      rows.push([
        j.id,
        j.state,
        seconds(j.durationMs),
        String(j.numRestarts),
        `${j.mode}/${j.slots}`,
        j.name,
      ]);
    process.stdout.write(table(rows));
    return 0;
  } catch (e) {
    return failed(e);
  }
}

/** `tidemark status JOB`: vertices with rates, watermarks and what holds them, backpressure, checkpoints. */
export async function jobStatus(jobId: string, flags: JobCommandFlags): Promise<number> {
  const base = requireUrl(flags, 'status');
  try {
    const { body: d } = await call<JobDetails>(base, 'GET', job(jobId), flags);
    const { body: cps } = await call<CheckpointsResponse>(base, 'GET', `${job(jobId)}/checkpoints`, flags);
    const wms = await Promise.all(
      d.vertices.map(
        async (v) =>
          (await call<VertexWatermarks>(base, 'GET', `${job(jobId)}/vertices/${v.id}/watermarks`, flags))
            .body,
      ),
    );
    if (flags.json === true) {
      process.stdout.write(`${JSON.stringify({ job: d, checkpoints: cps, watermarks: wms }, null, 2)}\n`);
      return 0;
    }
    const out: string[] = [];
    out.push(
      `job '${d.id}' (${d.name}): ${d.state}, up ${seconds(d.durationMs)}, ${d.mode} on ${d.slots} slot(s), attempt ${d.attempt}, ${d.numRestarts} restart(s)`,
    );
    const rows = [
      [
        'VERTEX',
        'STATE',
        'IN/S',
        'OUT/S',
        'RECORDS IN',
        'RECORDS OUT',
        'LATE',
        'BUSY',
        'BACKPR.',
        'WATERMARK',
      ],
    ];
    for (const v of d.vertices) {
      const m = v.metrics;
      rows.push([
        `${v.id} ${v.name} (${v.parallelism})`,
        v.state,
        num(m.numRecordsInPerSecond),
        num(m.numRecordsOutPerSecond),
        num(m.numRecordsIn),
        num(m.numRecordsOut),
        num(m.numLateRecordsDropped + m.numLateRecordsToSideOutput),
        `${Math.round(m.busyTimeMsPerSecond / 10)}%`,
        `${Math.round(m.backPressuredTimeMsPerSecond / 10)}%${m.isBackPressured ? '!' : ''}`,
        wm(m.currentOutputWatermark),
      ]);
    }
    out.push(table(rows).trimEnd());
    for (const w of wms) {
      const holders: string[] = [];
      for (const s of w.subtasks) {
        const h = s.heldBy === null ? undefined : s.inputs[s.heldBy];
        if (h !== undefined)
          holders.push(
            `#${s.subtaskIndex}: ${h.kind} '${h.name}' at ${wm(h.watermark)}${h.lastRecordAgeMs === null ? ', no record yet' : `, last record ${seconds(h.lastRecordAgeMs)} ago`}`,
          );
      }
      if (w.stall !== null)
        out.push(
          `  ! ${w.name}: watermark stalled for ${seconds(w.stall.stalledForMs)} (${w.stall.reason}): ${w.stall.message}`,
        );
      else if (holders.length > 0) out.push(`  ${w.name}: watermark held by ${holders.join('; ')}`);
    }
    const c = cps.counts;
    if (cps.config === null) out.push('checkpoints: off');
    else {
      out.push(
        `checkpoints: ${c.numberOfCompletedCheckpoints} completed, ${c.numberOfFailedCheckpoints} failed, ${c.numberOfInProgressCheckpoints} in progress; every ${seconds(cps.config.intervalMs)} to ${cps.config.storage}`,
      );
      for (const h of cps.history.slice(0, 5))
        out.push(
          `  ${h.savepoint ? 'savepoint' : 'checkpoint'} ${h.id}: ${h.status} ${new Date(h.triggerTimestamp).toISOString()}, ${h.durationMs} ms${h.sizeBytes === null ? '' : `, ${num(h.sizeBytes)} bytes`}${h.failureMessage === null ? '' : ` (${h.failureMessage})`}`,
        );
    }
    if (d.numExceptions > 0) out.push(`exceptions: ${d.numExceptions} (GET ${job(jobId)}/exceptions)`);
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  } catch (e) {
    return failed(e);
  }
}

/** `tidemark cancel JOB`. */
export async function cancelJob(jobId: string, flags: JobCommandFlags): Promise<number> {
  const base = requireUrl(flags, 'cancel');
  try {
    await call(base, 'PATCH', `${job(jobId)}?mode=cancel`, flags);
    process.stdout.write(`cancelling job '${jobId}'\n`);
    return 0;
  } catch (e) {
    return failed(e);
  }
}

/** Triggers a savepoint (or stop) over REST and waits for it; returns its id. */
async function savepointOverRest(
  base: string,
  jobId: string,
  flags: JobCommandFlags,
  stop: boolean,
): Promise<number> {
  const { body } = await call<TriggerResponse>(
    base,
    'POST',
    `${job(jobId)}/${stop ? 'stop' : 'savepoints'}`,
    flags,
    {},
  );
  const id = body['request-id'];
  for (;;) {
    const { body: s } = await call<SavepointStatus>(
      base,
      'GET',
      `${job(jobId)}/savepoints/${encodeURIComponent(id)}`,
      flags,
    );
    if (s.status.id === 'COMPLETED') {
      const op = s.operation;
      if (op !== null && 'savepointId' in op) return op.savepointId;
      throw new RestError(
        500,
        `the savepoint of job '${jobId}' failed: ${op === null ? 'unknown' : op.failureCause}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `tidemark stop JOB --savepoint`: a savepoint, then the job is cancelled. */
export async function stopJob(
  jobId: string,
  flags: JobCommandFlags & { savepoint?: boolean },
): Promise<number> {
  if (flags.savepoint !== true)
    throw new UsageError(
      'stop takes a savepoint and then cancels the job: say so with --savepoint (or use tidemark cancel)',
    );
  const base = requireUrl(flags, 'stop');
  try {
    const id = await savepointOverRest(base, jobId, flags, true);
    process.stdout.write(`savepoint ${id} of job '${jobId}' taken; the job is stopping\n`);
    return 0;
  } catch (e) {
    return failed(e);
  }
}

/** `tidemark savepoint JOB --job-manager HOST:PORT`. */
export async function savepointViaRest(jobId: string, flags: JobCommandFlags): Promise<number> {
  const base = requireUrl(flags, 'savepoint');
  try {
    const id = await savepointOverRest(base, jobId, flags, false);
    process.stdout.write(`savepoint ${id} of job '${jobId}' taken\n`);
    return 0;
  } catch (e) {
    return failed(e);
  }
}

function wm(w: WatermarkJson): string {
  if (w === null) return 'none';
  if (w >= MAX_WATERMARK_JSON) return 'end';
  return new Date(w).toISOString();
}

function num(n: number): string {
  return new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 }).format(n);
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_x, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}
