/**
 * The large-state demonstration (issue 16): the deduplication job of `bench/large-state-job.ts`
 * over N distinct keys (default 20 million) on the LMDB state backend, run with `tidemark run`
 * under `node --max-old-space-size=HEAP` (default 1024 MiB), checkpointing to a checkpoint
 * directory; killed with SIGKILL once a few checkpoints completed, restarted with
 * `--restore latest`, and its committed output checked: every key exactly once.
 *
 * Reports the time of both runs, the peak RSS and heap of each, the checkpoint durations and sizes
 * (from the job's log), and the time to restore.
 *
 * Run: `node --import ./bench/register.mjs bench/large-state.ts [--keys N] [--heap MIB]
 *   [--interval DURATION] [--kill-after-checkpoints N] [--state-backend lmdb|heap] [--dir DIR] [--json FILE]`
 * (not part of `npm run bench`: at 20 M keys it runs for tens of minutes here).
 */
import { spawn } from 'node:child_process';
import { createReadStream, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BIN = fileURLToPath(new URL('../bin/tidemark.js', import.meta.url));
const JOB = fileURLToPath(new URL('./large-state-job.ts', import.meta.url));

/** What one run (until the kill, or to the end) measured. */
export interface RunFigures {
  exitCode: number | null;
  signal: string | null;
  wallMs: number;
  peakRssBytes: number;
  peakHeapBytes: number;
  checkpoints: { id: number; durationMs: number; bytes: number }[];
}

/** The demonstration's result. */
export interface LargeStateResult {
  keys: number;
  events: number;
  heapLimitMiB: number;
  stateBackend: string;
  first: RunFigures;
  second: RunFigures;
  /** Time from the restart to the first checkpoint completed after it (an upper bound of the restore). */
  outputLines: number;
  exactlyOnce: boolean;
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]) * 1024;
  } catch {
    return 0;
  }
}

/** Runs `tidemark run` on the job; kills it once `killAfter` checkpoints completed, if given. */
function runJob(
  args: string[],
  env: NodeJS.ProcessEnv,
  heapMiB: number,
  killAfter?: number,
): Promise<RunFigures> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [`--max-old-space-size=${heapMiB}`, BIN, 'run', JOB, ...args], {
      env: { ...process.env, ...env, LARGE_STATE_MEMORY: '1', TIDEMARK_LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    const figures: RunFigures = {
      exitCode: null,
      signal: null,
      wallMs: 0,
      peakRssBytes: 0,
      peakHeapBytes: 0,
      checkpoints: [],
    };
    const sampler = setInterval(() => {
      figures.peakRssBytes = Math.max(figures.peakRssBytes, rssOf(child.pid!));
    }, 200);
    let tail: string[] = [];
    let samples = 0;
    createInterface({ input: child.stderr! }).on('line', (line) => {
      const mem = /^MEMORY heap=(\d+) rss=(\d+)/.exec(line);
      if (mem !== null) {
        figures.peakHeapBytes = Math.max(figures.peakHeapBytes, Number(mem[1]));
        figures.peakRssBytes = Math.max(figures.peakRssBytes, Number(mem[2]));
        if (++samples % 15 === 0)
          process.stderr.write(
            `large-state: heap ${(Number(mem[1]) / 2 ** 20).toFixed(0)} MiB, RSS ${(Number(mem[2]) / 2 ** 20).toFixed(0)} MiB\n`,
          );
        return;
      }
      tail = [...tail.slice(-30), line];
      const cp = /checkpoint (\d+) completed in (\d+) ms \((\d+) bytes written\)/.exec(line);
      if (cp !== null) {
        figures.checkpoints.push({ id: Number(cp[1]), durationMs: Number(cp[2]), bytes: Number(cp[3]) });
        process.stderr.write(`large-state: ${line.trim()}\n`);
        if (killAfter !== undefined && figures.checkpoints.length === killAfter) child.kill('SIGKILL');
      } else if (/error|fail|restor/i.test(line)) process.stderr.write(`large-state: ${line.trim()}\n`);
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearInterval(sampler);
      figures.exitCode = code;
      figures.signal = signal;
      figures.wallMs = Date.now() - started;
      if (killAfter === undefined && code !== 0)
        reject(
          new Error(`the job failed (exit code ${code}, ${signal ?? 'no signal'}):\n${tail.join('\n')}`),
        );
      else if (killAfter !== undefined && signal !== 'SIGKILL')
        reject(
          new Error(
            `the job ended (exit code ${code}) before ${killAfter} checkpoints completed:\n${tail.join('\n')}`,
          ),
        );
      else resolve(figures);
    });
  });
}

/** Counts the committed output lines and their sum; true when every key is there exactly once. */
async function checkOutput(dir: string, keys: number): Promise<{ lines: number; exactlyOnce: boolean }> {
  let lines = 0;
  let sum = 0;
  const seen = new Uint8Array(keys);
  let duplicates = 0;
  for (const f of readdirSync(dir)) {
    if (f.startsWith('.')) continue;
    for await (const line of createInterface({ input: createReadStream(join(dir, f)) })) {
      if (line === '') continue;
      const k = Number(line);
      lines++;
      sum += k;
      if (seen[k] === 1) duplicates++;
      seen[k] = 1;
    }
  }
  const exactlyOnce = lines === keys && duplicates === 0 && sum === (keys * (keys - 1)) / 2;
  return { lines, exactlyOnce };
}

/** Runs the demonstration. */
export async function runLargeState(options: {
  keys: number;
  heapMiB: number;
  interval: string;
  killAfter: number;
  stateBackend: string;
  dir: string;
  leaseDuration?: string;
  /** Records per second of the job's source (default: as fast as it goes). */
  ratePerSecond?: number;
}): Promise<LargeStateResult> {
  const { keys, heapMiB, dir } = options;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'out');
  const env = {
    LARGE_STATE_KEYS: String(keys),
    LARGE_STATE_OUT: out,
    ...(options.ratePerSecond === undefined ? {} : { LARGE_STATE_RATE: String(options.ratePerSecond) }),
  };
  const args = [
    '--state-backend',
    options.stateBackend,
    ...(options.stateBackend === 'lmdb' ? ['--state-dir', join(dir, 'state')] : []),
    '--checkpoint-interval',
    options.interval,
    '--checkpoint-storage',
    join(dir, 'checkpoints'),
    '--retain',
    '2',
    '--job-id',
    'large-state',
    // NOTE: in a run on one process the task shares the job manager's thread, and a restore of
    // millions of keys is synchronous on it (each key group decoded and written to LMDB): the
    // leader lease (renewed every third of it) must outlast it. Measured: 10 M keys blocked the
    // thread longer than the default 15 s, and the job manager lost its lease.
    '--lease-duration',
    options.leaseDuration ?? '120s',
  ];
  process.stderr.write(
    `large-state: ${keys.toLocaleString('en')} keys, ${Math.floor(keys * 1.25).toLocaleString('en')} events, ${options.stateBackend} backend, --max-old-space-size=${heapMiB}, a checkpoint every ${options.interval}; killed (SIGKILL) after ${options.killAfter} checkpoints, then --restore latest\n`,
  );
  const first = await runJob(args, env, heapMiB, options.killAfter);
  process.stderr.write(
    `large-state: killed after ${(first.wallMs / 1000).toFixed(1)} s; restarting with --restore latest\n`,
  );
  const second = await runJob([...args, '--restore', 'latest'], env, heapMiB);
  const { lines, exactlyOnce } = await checkOutput(out, keys);
  return {
    keys,
    events: Math.floor(keys * 1.25),
    heapLimitMiB: heapMiB,
    stateBackend: options.stateBackend,
    first,
    second,
    outputLines: lines,
    exactlyOnce,
  };
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
const secs = (n: number) => `${(n / 1000).toFixed(1)} s`;

/** The result as report lines. */
export function formatLargeState(r: LargeStateResult): string[] {
  const cps = (f: RunFigures) => {
    if (f.checkpoints.length === 0) return 'none';
    const d = f.checkpoints.map((c) => c.durationMs).sort((a, b) => a - b);
    return `${f.checkpoints.length}, duration median ${d[d.length >> 1]} ms, max ${d.at(-1)} ms, ${mib(Math.max(...f.checkpoints.map((c) => c.bytes)))} written at most`;
  };
  return [
    `large state (${r.keys.toLocaleString('en')} keys, ${r.events.toLocaleString('en')} events, ${r.stateBackend} backend, --max-old-space-size=${r.heapLimitMiB}):`,
    `  run until SIGKILL   ${secs(r.first.wallMs)}, peak RSS ${mib(r.first.peakRssBytes)}, peak heap ${mib(r.first.peakHeapBytes)}; checkpoints: ${cps(r.first)}`,
    `  --restore latest    ${secs(r.second.wallMs)} to the end, peak RSS ${mib(r.second.peakRssBytes)}, peak heap ${mib(r.second.peakHeapBytes)}; checkpoints: ${cps(r.second)}`,
    `  output              ${r.outputLines.toLocaleString('en')} lines: ${r.exactlyOnce ? 'every key exactly once' : 'NOT exactly once'}`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      keys: { type: 'string', default: '20000000' },
      heap: { type: 'string', default: '1024' },
      interval: { type: 'string', default: '10s' },
      'kill-after-checkpoints': { type: 'string', default: '2' },
      'state-backend': { type: 'string', default: 'lmdb' },
      dir: { type: 'string' },
      json: { type: 'string' },
    },
    strict: true,
  });
  const dir = values.dir ?? join(tmpdir(), 'tidemark-large-state');
  const result = await runLargeState({
    keys: Number(values.keys),
    heapMiB: Number(values.heap),
    interval: values.interval,
    killAfter: Number(values['kill-after-checkpoints']),
    stateBackend: values['state-backend'],
    dir,
  });
  for (const line of formatLargeState(result)) console.log(line);
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = result.exactlyOnce ? 0 : 1;
}
