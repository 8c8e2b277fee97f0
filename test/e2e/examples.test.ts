// Every file in examples/ runs here, so examples cannot rot. Each example has its own check of
// what it computes; a new example without a check fails this test.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { buildJob, isJobDefinition } from 'tidemark';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { BIN, lastLine, ROOT, runCli } from '../helpers/cli.js';

function exampleFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return exampleFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [relative(ROOT, p)] : [];
  });
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

describe('examples', () => {
  process.env.PAGEVIEWS = '20000';
  process.env.TRANSACTIONS = '20000';
  process.env.CLICKS = '20000';
  afterEach(() => vi.restoreAllMocks());
  const files = exampleFiles(join(ROOT, 'examples'));

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
      const child = spawn(
        process.execPath,
        [BIN, 'run', join(ROOT, 'examples/pageviews.ts'), '--progress', '--checkpoint-interval', '100ms'],
        {
          cwd,
          env: { ...process.env, ...env },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      while (!/checkpoint \d+/.test(stderr) && child.exitCode === null)
        await new Promise((r) => setTimeout(r, 20));
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGINT');
        await exited;
      }
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
