// Every file in examples/ runs here, so examples cannot rot. Each example has its own check of
// what it computes; a new example without a check fails this test.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { buildJob } from 'tidemark';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { isJobDefinition } from '../../runtime/job.js';
import { BIN, lastLine, ROOT, runCli } from '../helpers/cli.js';
import * as nexmark from '../helpers/nexmark-reference.js';

// Sizes of the examples' inputs; read when a module loads, so set before discovery imports them.
process.env.PAGEVIEWS = '20000';
process.env.TRANSACTIONS = '20000';
process.env.CLICKS = '20000';
process.env.NEXMARK_EVENTS = '20000';

function exampleFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return exampleFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [relative(ROOT, p)] : [];
  });
}

/**
 * The example jobs: every module with a default export. Modules without one are helpers that jobs
 * import (such as the Nexmark generator), not examples to run; a default export that is not a job
 * stays in the list, and fails in `runExample`.
 */
async function exampleJobs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const file of exampleFiles(dir)) {
    const mod = (await import(join(ROOT, file))) as { default?: unknown };
    if (mod.default !== undefined) out.push(file);
  }
  return out;
}

/** The records an example printed with `print(label)` (at any parallelism), parsed as JSON. */
function printed(lines: readonly string[], label: string): unknown[] {
  const prefix = new RegExp(`^${label}(:\\d+)?> `);
  return lines.filter((l) => prefix.test(l)).map((l) => JSON.parse(l.slice(l.indexOf('> ') + 2)) as unknown);
}

/** Events of the Nexmark examples (as many as NEXMARK_EVENTS asks), generated once. */
let nexmarkEvents: ReturnType<typeof nexmark.generateEvents> | undefined;
function nexmarkInput(): ReturnType<typeof nexmark.generateEvents> {
  nexmarkEvents ??= nexmark.generateEvents(Number(process.env.NEXMARK_EVENTS));
  return nexmarkEvents;
}

/** A check that a Nexmark example printed exactly the batch computation of its query. */
function nexmarkCheck(query: string, reference: (events: ReturnType<typeof nexmarkInput>) => unknown[]) {
  return async (p: number) => {
    const lines = await runExample(`examples/nexmark/${query}.ts`, p);
    const expected = reference(nexmarkInput());
    expect(expected.length).toBeGreaterThan(0);
    expect(nexmark.canonicalJson(printed(lines, query))).toEqual(nexmark.canonicalJson(expected));
  };
}

/** Runs an example in process; returns what it printed. */
async function runExample(file: string, parallelism: number): Promise<string[]> {
  const mod = (await import(join(ROOT, file))) as { default: unknown };
  if (!isJobDefinition(mod.default)) throw new Error(`${file} does not export a job`);
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(...args.join(' ').split('\n'));
  });
  try {
    const env = await buildJob(mod.default, { parallelism });
    await env.execute({ stdout: { writeLine: (l) => lines.push(l) } });
  } finally {
    spy.mockRestore();
  }
  return lines;
}

const checks: Record<string, (parallelism: number) => Promise<void>> = {
  'examples/sessionization.ts': async (p) => {
    const m = (await import(
      '../../examples/sessionization.js'
    )) as typeof import('../../examples/sessionization.js');
    const lines = await runExample('examples/sessionization.ts', p);
    // Independent computation: stragglers are late; the rest form sessions per user, split
    // where the next click is more than the gap after the previous one.
    const clicks = Array.from({ length: m.COUNT }, (_x, i) => m.click(i));
    let max = Number.NEGATIVE_INFINITY;
    const onTime: typeof clicks = [];
    let late = 0;
    for (const c of clicks) {
      if (c.time + m.GAP_MS - 1 <= max - m.OUT_OF_ORDER_MS - 1) late++;
      else onTime.push(c);
      max = Math.max(max, c.time);
    }
    const sessions: string[] = [];
    const byUser = new Map<string, typeof clicks>();
    for (const c of onTime) byUser.set(c.user, [...(byUser.get(c.user) ?? []), c]);
    for (const [user, cs] of byUser) {
      cs.sort((a, b) => a.time - b.time);
      let start = cs[0]!.time;
      let last = start;
      let n = 0;
      for (const c of cs) {
        if (c.time - last > m.GAP_MS) {
          sessions.push(`${user} ${start} ${last + m.GAP_MS} ${n}`);
          start = c.time;
          n = 0;
        }
        last = c.time;
        n++;
      }
      sessions.push(`${user} ${start} ${last + m.GAP_MS} ${n}`);
    }
    const printed = lines
      .filter((l) => /^session(:\d)?> /.test(l))
      .map(
        (l) =>
          JSON.parse(l.slice(l.indexOf('> ') + 2)) as {
            user: string;
            start: number;
            end: number;
            clicks: number;
          },
      )
      .map((s) => `${s.user} ${s.start} ${s.end} ${s.clicks}`);
    expect(late).toBeGreaterThan(0);
    expect(printed.sort()).toEqual(sessions.sort());
    expect(lines.filter((l) => /^late(:\d)?> /.test(l)).length).toBe(late);
    const perUser = Object.fromEntries(
      [...byUser.keys()].map((u) => [u, sessions.filter((s) => s.startsWith(`${u} `)).length]),
    );
    expect(JSON.parse(lastLine(lines.join('\n')))).toEqual(perUser);
  },

  'examples/fraud-detection.ts': async (p) => {
    const m = (await import(
      '../../examples/fraud-detection.js'
    )) as typeof import('../../examples/fraud-detection.js');
    const lines = await runExample('examples/fraud-detection.ts', p);
    // Independent computation: per account, a large transaction within a minute after the latest
    // unconsumed small one.
    const last = new Map<number, number>();
    const alerts = new Map<string, number>();
    let total = 0;
    for (let i = 0; i < m.COUNT; i++) {
      const t = m.transaction(i);
      const s = last.get(t.accountId);
      if (s !== undefined && t.timestamp - s < m.ONE_MINUTE && t.amount > m.LARGE_AMOUNT) {
        alerts.set(String(t.accountId), (alerts.get(String(t.accountId)) ?? 0) + 1);
        last.delete(t.accountId);
        total++;
      }
      if (t.amount < m.SMALL_AMOUNT) last.set(t.accountId, t.timestamp);
    }
    expect(total).toBeGreaterThan(3);
    expect(JSON.parse(lastLine(lines.join('\n')))).toEqual(Object.fromEntries(alerts));
    expect(lines.filter((l) => /^alert(:\d)?> /.test(l)).length).toBe(total);
  },

  'examples/wordcount.ts': async (p) => {
    const lines = await runExample('examples/wordcount.ts', p);
    expect(JSON.parse(lastLine(lines.join('\n')))).toEqual({ hello: 2, world: 1, python: 2, is: 1, fun: 1 });
  },
  'examples/nexmark/q0.ts': nexmarkCheck('q0', nexmark.q0),
  'examples/nexmark/q1.ts': nexmarkCheck('q1', nexmark.q1),
  'examples/nexmark/q2.ts': nexmarkCheck('q2', nexmark.q2),
  'examples/nexmark/q3.ts': nexmarkCheck('q3', nexmark.q3),
  'examples/nexmark/q4.ts': async (p) => {
    const lines = await runExample('examples/nexmark/q4.ts', p);
    // An update per closed auction, then the final average per category.
    const expected = nexmark.q4(nexmarkInput());
    expect(printed(lines, 'q4').length).toBe(expected.reduce((n, r) => n + r.auctions, 0));
    expect(JSON.parse(lastLine(lines.join('\n')))).toEqual(
      Object.fromEntries(expected.map((r) => [String(r.category), r.average])),
    );
  },
  'examples/nexmark/q5.ts': nexmarkCheck('q5', nexmark.q5),
  'examples/nexmark/q7.ts': nexmarkCheck('q7', nexmark.q7),
  'examples/nexmark/q8.ts': nexmarkCheck('q8', nexmark.q8),
  'examples/nexmark/q11.ts': nexmarkCheck('q11', nexmark.q11),
  'examples/nexmark/q12.ts': async (p) => {
    // NOTE: processing-time windows: what a run prints depends on the wall clock (a short run
    // may close no window). Exact results are checked in test/integration/nexmark.test.ts on a
    // manual clock; here, what it prints must be whole windows of real bids, each counted once.
    const lines = await runExample('examples/nexmark/q12.ts', p);
    const rows = printed(lines, 'q12') as {
      bidder: number;
      bidCount: number;
      starttime: number;
      endtime: number;
    }[];
    const bids = nexmarkInput().filter((e) => e.kind === 'bid');
    const bidders = new Set(bids.map((b) => b.bidder));
    expect(rows.every((r) => bidders.has(r.bidder) && r.bidCount >= 1)).toBe(true);
    expect(rows.every((r) => r.starttime % 10_000 === 0 && r.endtime === r.starttime + 10_000)).toBe(true);
    expect(new Set(rows.map((r) => `${r.bidder}@${r.starttime}`)).size).toBe(rows.length);
    expect(rows.reduce((n, r) => n + r.bidCount, 0)).toBeLessThanOrEqual(bids.length);
  },
  'examples/pageviews.ts': async (p) => {
    const { pageView, COUNT } = (await import(
      '../../examples/pageviews.js'
    )) as typeof import('../../examples/pageviews.js');
    const lines = await runExample('examples/pageviews.ts', p);
    // Independent computation of the same figures.
    const views = new Map<string, number>();
    for (let i = 0; i < COUNT; i++) {
      const v = pageView(i);
      if (!v.page.startsWith('/admin')) views.set(v.user, (views.get(v.user) ?? 0) + 1);
    }
    const top = [...views].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 10);
    expect(lines[0]).toBe(`users seen: ${views.size}; top 10 by views:`);
    expect(lines.slice(1, 11).map((l) => l.trim().split(/\s+/).slice(0, 2))).toEqual(
      top.map(([u, n]) => [u, String(n)]),
    );
  },
};

const files = await exampleJobs(join(ROOT, 'examples'));

// NOTE: processes that run whole jobs: minutes on a loaded machine.
describe('examples', { timeout: 180_000 }, () => {
  afterEach(() => vi.restoreAllMocks());

  test('every example has a check', () => {
    expect(files.filter((f) => !(f in checks))).toEqual([]);
  });

  for (const file of files) {
    test.each([1, 3])(`${file} at parallelism %i`, async (p) => {
      const check = checks[file];
      if (check === undefined) throw new Error(`no check for ${file}`);
      await check(p);
    });
  }

  test('the demo checkpoints; interrupted, it resumes with --restore latest and prints the same result', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'tidemark-demo-'));
    try {
      const env = { PAGEVIEWS: '2000000' };
      const full = await runCli(['run', join(ROOT, 'examples/pageviews.ts')], { env, cwd });
      // NOTE: the interrupted run is paced (about 2 s for its 2 M page views), so that it is still
      // running after its first checkpoint however fast the machine: unpaced, it once finished in
      // 0.8 s, before the interrupt, and the resumed run (from its final checkpoint) had nothing
      // left to print.
      const child = spawn(
        process.execPath,
        [BIN, 'run', join(ROOT, 'examples/pageviews.ts'), '--progress', '--checkpoint-interval', '100ms'],
        {
          cwd,
          env: { ...process.env, ...env, PAGEVIEWS_PER_SECOND: '1000000' },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      while (!/checkpoint \d+/.test(stderr) && child.exitCode === null)
        await new Promise((r) => setTimeout(r, 20));
      expect(child.exitCode, `the run ended before it was interrupted:\n${stderr}`).toBeNull();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
      const resumed = await runCli(['run', join(ROOT, 'examples/pageviews.ts'), '--restore', 'latest'], {
        env,
        cwd,
      });
      expect(resumed.code).toBe(0);
      expect(resumed.stderr).toMatch(/\[pageviews\] restored from checkpoint \d+/);
      expect(resumed.stdout).toBe(full.stdout);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  test('npm start runs the demo with a progress line and ends by itself', async () => {
    const r = await runCli(['run', 'examples/pageviews.ts', '--progress'], { env: { PAGEVIEWS: '300000' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^users seen: \d+; top 10 by views:/);
    expect(r.stderr).toMatch(
      /\[pageviews\] [\d.]+ s \| events 300,000 \([\d,]+\/s average\) \| records out [\d,]+\n$/,
    );
  });
});
