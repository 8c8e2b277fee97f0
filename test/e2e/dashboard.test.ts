// The dashboard (web/) in a real browser: Debian's chromium driven by playwright-core, nothing
// downloaded. A real job runs with `tidemark run --web-port 0`; the test opens the dashboard and
// checks what a person would look at, and saves screenshots for the README (docs/images/).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BIN, ROOT } from '../helpers/cli.js';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p) => p !== undefined && p !== '' && existsSync(p),
);
const NO_BROWSER =
  CHROMIUM === undefined ? 'no chromium (apt-get install chromium, or set CHROMIUM_PATH)' : '';
if (NO_BROWSER !== '') console.warn(`dashboard browser tests skipped: ${NO_BROWSER}`);

const IMAGES = join(ROOT, 'docs/images');
const WAIT_MS = 45_000;

interface Running {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

/** Starts `command args` and waits for its "dashboard: URL" line on standard error. */
function startWithDashboard(command: string, args: string[], detached = false): Promise<Running> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached,
    });
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`no dashboard line; stderr: ${stderr}`)), WAIT_MS);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /dashboard: (http:\/\/\S+\/)/.exec(stderr);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before the dashboard was up; stderr: ${stderr}`));
    });
  });
}

/** Interrupts a process (its group if `group`) and waits for it to exit; kills it after 10 s. */
async function stop(child: ChildProcess, group = false): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  const signal = (s: NodeJS.Signals) => {
    try {
      if (group) process.kill(-child.pid!, s);
      else child.kill(s);
    } catch {}
  };
  signal('SIGINT');
  const timer = setTimeout(() => signal('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM!,
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
}

/** A page that fails the test on a script error. */
async function open(browser: Browser, url: string, errors: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  return page;
}

async function api<T>(base: string, path: string): Promise<T> {
  const res = await fetch(new URL(path, base));
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return (await res.json()) as T;
}

interface JobLike {
  id: string;
  vertices: { id: number; name: string }[];
}

describe.skipIf(NO_BROWSER !== '')('the dashboard of a running job', () => {
  let browser: Browser;
  let job: Running;
  let page: Page;
  let vertex: (name: string) => number;
  const errors: string[] = [];

  beforeAll(async () => {
    mkdirSync(IMAGES, { recursive: true });
    [browser, job] = await Promise.all([
      launch(),
      startWithDashboard(process.execPath, [
        BIN,
        'run',
        'test/e2e/jobs/dashboard-job.ts',
        '--web-port',
        '0',
        '--web-stall-threshold',
        '2s',
        '--checkpoint-interval',
        '1s',
        '--checkpoint-storage',
        'memory://dashboard-test',
        '--restart-strategy',
        'fixed-delay:3:200ms',
      ]),
    ]);
    const { jobs } = await api<{ jobs: { id: string }[] }>(job.url, '/jobs');
    const details = await api<JobLike>(job.url, `/jobs/${encodeURIComponent(jobs[0]!.id)}`);
    vertex = (name) => details.vertices.find((v) => v.name.includes(name))!.id;
    page = await open(browser, job.url, errors);
  });

  afterAll(async () => {
    await browser?.close();
    if (job !== undefined) await stop(job.child);
  });

  test('the job graph: every vertex, moving rates, colours and records per subtask', async () => {
    await page.goto(`${job.url}#graph`);
    const graph = page.getByTestId('job-graph');
    await graph.waitFor({ timeout: WAIT_MS });
    await expect.poll(() => graph.locator('g.vertex').count(), { timeout: WAIT_MS }).toBe(7);
    await expect(page.getByTestId('job-name').textContent()).resolves.toBe('dashboard-test');
    const source = page.getByTestId(`vertex-${vertex('Source: clicks')}`);
    // Moving rates: the source emits about 400 records/s; its subtasks' counts grow.
    await expect
      .poll(async () => Number(await source.getAttribute('data-rate')), { timeout: WAIT_MS })
      .toBeGreaterThan(100);
    const bar = page.getByTestId(`subtask-bar-${vertex('Source: clicks')}-1`);
    const before = Number(await bar.getAttribute('data-records'));
    await expect
      .poll(async () => Number(await bar.getAttribute('data-records')), { timeout: WAIT_MS })
      .toBeGreaterThan(before);
    await expect(page.getByTestId(`vertex-rate-${vertex('Source: clicks')}`).textContent()).resolves.toMatch(
      /records\/s out/,
    );
    await page.screenshot({ path: join(IMAGES, 'dashboard-graph.png') });
  });

  test('watermarks: the one held back by an idle input is flagged, with the input named', async () => {
    await page.goto(`${job.url}#watermarks`);
    // The gauge's source: its split has sent nothing for a while, and is not marked idle.
    const gauge = page.getByTestId(`wm-stall-${vertex('Source: gauges')}`);
    await gauge.waitFor({ timeout: WAIT_MS });
    await expect(gauge.getAttribute('data-reason')).resolves.toBe('idle-input');
    await expect(gauge.textContent()).resolves.toMatch(/split 'iterable' has sent no record/);
    // The window downstream: held back by its input from the gauge, named.
    const windows = vertex('max per sensor');
    const stall = page.getByTestId(`wm-stall-${windows}`);
    await stall.waitFor({ timeout: WAIT_MS });
    await expect(stall.getAttribute('data-reason')).resolves.toBe('idle-input');
    await expect(stall.textContent()).resolves.toMatch(/input 'Source: gauges \(1\/1\)'/);
    const held = page.locator(`[data-testid^="wm-held-${windows}-"]`);
    await expect(held.first().textContent()).resolves.toMatch(
      /^channel Source: gauges \(1\/1\) — (idle|no record)/,
    );
    // The clicks branch is not held back.
    await expect(page.getByTestId(`wm-stall-${vertex('clicks per user')}`).count()).resolves.toBe(0);
    await page.screenshot({ path: join(IMAGES, 'dashboard-watermarks.png'), fullPage: true });
  });

  test('late data: the late clicks counted per window operator', async () => {
    await page.goto(`${job.url}#late`);
    const side = page.getByTestId('late-side-clicks-per-user');
    await side.waitFor({ timeout: WAIT_MS });
    await expect
      .poll(async () => Number(/(\d+)/.exec((await side.textContent()) ?? '')?.[1] ?? 0), {
        timeout: WAIT_MS,
      })
      .toBeGreaterThan(0);
    await expect(page.getByTestId('late-dropped-clicks-per-user').textContent()).resolves.toMatch(/: 0$/);
    await page.screenshot({ path: join(IMAGES, 'dashboard-late.png') });
  });

  test('checkpoints: the history charts and the timeline of one checkpoint per subtask', async () => {
    await page.goto(`${job.url}#checkpoints`);
    await expect
      .poll(async () => Number(await page.getByTestId('cp-completed').textContent()), { timeout: WAIT_MS })
      .toBeGreaterThan(2);
    const gantt = page.getByTestId('cp-gantt');
    await gantt.waitFor({ timeout: WAIT_MS });
    // A row per subtask (2 + 2 + 1 + 1 + 2 + 1 + 2), each with its phases drawn.
    await expect(gantt.locator('g[data-testid^="cp-gantt-row-"]').count()).resolves.toBe(11);
    await expect.poll(() => gantt.locator('rect.ph').count(), { timeout: WAIT_MS }).toBeGreaterThan(10);
    await expect(page.getByTestId('cp-duration-chart').locator('canvas').count()).resolves.toBe(1);
    // Another checkpoint picked from the history.
    const rows = page.locator('[data-testid^="cp-row-"]');
    const last = rows.last();
    const id = (await last.getAttribute('data-testid'))!.slice('cp-row-'.length);
    await last.click();
    await expect
      .poll(() => page.locator('#cp-timeline-title').textContent(), { timeout: WAIT_MS })
      .toContain(`checkpoint #${id} `);
    await page.screenshot({ path: join(IMAGES, 'dashboard-checkpoints.png'), fullPage: true });
  });

  test('exceptions: the failure with its operator, subtask and record, and the restart', async () => {
    await page.goto(`${job.url}#exceptions`);
    const first = page.getByTestId('exception-0');
    await first.waitFor({ timeout: WAIT_MS });
    await expect(first.textContent()).resolves.toMatch(/click 150 is poisoned/);
    await expect(first.textContent()).resolves.toMatch(/check clicks/);
    await expect(page.getByTestId('exception-record-0').textContent()).resolves.toMatch(/"n":150/);
    await expect(page.getByTestId('restart-1').count()).resolves.toBe(1);
    await page.screenshot({ path: join(IMAGES, 'dashboard-exceptions.png') });
  });

  test('a live tail of a chosen vertex', async () => {
    await page.goto(`${job.url}#tail`);
    await page.getByTestId('tail-vertex').selectOption(String(vertex('clicks per user')));
    await page.getByTestId('tail-toggle').click();
    await expect.poll(() => page.getByTestId('tail-line').count(), { timeout: WAIT_MS }).toBeGreaterThan(2);
    // `[subtask] @event time count`: the window's counts per user, with their timestamps.
    await expect(page.getByTestId('tail-line').first().textContent()).resolves.toMatch(
      /^\[[12]\] @\S.* \d+( \(\+\d+ not shown\))?$/,
    );
    await expect(page.getByTestId('tail-status').textContent()).resolves.toMatch(/^live/);
    await page.screenshot({ path: join(IMAGES, 'dashboard-tail.png') });
    await page.getByTestId('tail-toggle').click();
    await expect(page.getByTestId('tail-status').textContent()).resolves.toBe('stopped');
  });

  test('a server that went away: the last figures stay, and a banner says so', async () => {
    await page.goto(`${job.url}#graph`);
    await page.getByTestId('job-graph').waitFor({ timeout: WAIT_MS });
    await stop(job.child);
    const banner = page.getByTestId('banner');
    await expect
      .poll(() => banner.textContent(), { timeout: WAIT_MS })
      .toMatch(/server (does not answer|has stopped)/);
    await expect(page.getByTestId('job-graph').count()).resolves.toBe(1);
    expect(errors).toEqual([]);
  });
});

describe.skipIf(NO_BROWSER !== '')('npm start', () => {
  test('runs the demo with the dashboard on; the browser shows its graph', async () => {
    const browser = await launch();
    // As a user types it, with a free port instead of the fixed one.
    const demo = await startWithDashboard(
      'npm',
      ['start', '--silent', '--', '--web-port', '0', '--checkpoint-storage', 'memory://npm-start-test'],
      true,
    );
    try {
      const errors: string[] = [];
      const page = await open(browser, demo.url, errors);
      const graph = page.getByTestId('job-graph');
      await graph.waitFor({ timeout: WAIT_MS });
      await expect.poll(() => graph.locator('g.vertex').count(), { timeout: WAIT_MS }).toBe(3);
      await expect(page.getByTestId('job-name').textContent()).resolves.toBe('pageviews');
      await expect
        .poll(async () => Number(await graph.locator('g.vertex').first().getAttribute('data-rate')), {
          timeout: WAIT_MS,
        })
        .toBeGreaterThan(0);
      await expect
        .poll(
          async () =>
            /checkpoints (\d+)/.exec((await page.getByTestId('job-facts').textContent()) ?? '')?.[1],
          {
            timeout: WAIT_MS,
          },
        )
        .toMatch(/^([3-9]|\d\d+)$/);
      await page.screenshot({ path: join(IMAGES, 'dashboard-demo.png') });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await stop(demo.child, true);
    }
  });
});
