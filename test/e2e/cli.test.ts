import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';
import { BIN, type CliResult, lastLine, runCli } from '../helpers/cli.js';

const WORDS = { hello: 2, world: 1, python: 2, is: 1, fun: 1 };

// NOTE: each test runs the command several times, a process each: minutes on a loaded machine.
describe('tidemark CLI', { timeout: 180_000 }, () => {
  test.each([1, 4])(
    'runs examples/wordcount.ts at parallelism %i and ends with the counts as JSON',
    async (p) => {
      const r = await runCli(['run', 'examples/wordcount.ts', '--parallelism', String(p)]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(lastLine(r.stdout))).toEqual(WORDS);
      // The same line at every parallelism: the keys sorted, whatever order they arrived in.
      expect(lastLine(r.stdout)).toBe('{"fun":1,"hello":2,"is":1,"python":2,"world":1}');
      // Every rolling update is printed before the summary.
      const updates = r.stdout.trimEnd().split('\n').slice(0, -1);
      expect(updates.length).toBe(7);
    },
  );

  test('runs examples/wordcount.ts on 2 slots (worker threads) with the same result', async () => {
    const r = await runCli(['run', 'examples/wordcount.ts', '--parallelism', '4', '--slots', '2']);
    expect(r.code).toBe(0);
    expect(JSON.parse(lastLine(r.stdout))).toEqual(WORDS);
  });

  test('runs where code generation from strings is disallowed (chains fall back to closures)', async () => {
    const r = await runCli(['run', 'examples/wordcount.ts'], {
      env: { NODE_OPTIONS: '--disallow-code-generation-from-strings' },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(lastLine(r.stdout))).toEqual(WORDS);
  });

  test('plan prints the execution graph as text, dot and json', async () => {
    const text = await runCli(['plan', 'examples/wordcount.ts', '-p', '4']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("job 'wordcount'");
    expect(text.stdout).toContain('chain: reduce [5-reduce] keyed -> print [6-print]');
    expect(text.stdout).toContain('by hash (keyBy)');
    const dot = await runCli(['plan', 'examples/wordcount.ts', '--format', 'dot']);
    expect(dot.stdout).toMatch(/^digraph "wordcount" \{/);
    // Graphviz breaks a label's line at \n (a backslash and an n), not at \\n.
    expect(dot.stdout).toContain('"5-reduce" [label="reduce\\n5-reduce"];');
    expect(dot.stdout).not.toContain('\\\\n');
    const json = await runCli(['plan', 'examples/wordcount.ts', '--format', 'json', '--parallelism', '3']);
    const plan = JSON.parse(json.stdout);
    expect(plan.jobName).toBe('wordcount');
    expect(plan.vertices.find((v: { name: string }) => v.name.startsWith('reduce')).parallelism).toBe(3);
  });

  test('plan --slots shows which slot runs which subtasks (slot sharing, parallelism-1 vertices in slot 0)', async () => {
    const text = await runCli(['plan', 'examples/wordcount.ts', '-p', '2', '--slots', '3']);
    expect(text.code).toBe(0);
    const lines = text.stdout.split('\n');
    expect(lines).toContain(
      'on 3 slot(s): 2 used (as many as the highest parallelism), subtask i of every vertex in slot i mod 2',
    );
    const slot0 = lines.find((l) => l.startsWith('  slot 0: '))!;
    const slot1 = lines.find((l) => l.startsWith('  slot 1: '))!;
    // fromElements is not parallel: its one subtask shares slot 0; the keyed chain has one subtask in each.
    expect(slot0).toMatch(/Source: fromElements.*\(1\/1\)/);
    expect(slot0).toContain('reduce -> print (1/2)');
    expect(slot1).toContain('reduce -> print (2/2)');
    expect(slot1).not.toContain('(1/1)');
    const json = JSON.parse(
      (await runCli(['plan', 'examples/wordcount.ts', '-p', '2', '--slots', '2', '-f', 'json'])).stdout,
    );
    expect(json.placement.slots).toBe(2);
    expect(json.placement.bySlot.flat().length).toBe(
      json.vertices.reduce((n: number, v: { parallelism: number }) => n + v.parallelism, 0),
    );
  });

  test('simulate runs seeds deterministically and prints one digest per seed', async () => {
    const r = await runCli(['simulate', 'examples/wordcount.ts', '--seed', '5', '--seeds', '20', '-p', '3']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBe(21);
    expect(lines[0]).toMatch(/^seed 5: ok, \d+ steps, output digest [0-9a-f]{16}$/);
    expect(lines[20]).toMatch(/^20 seed\(s\) in [\d.]+ s \([\d.]+ seeds\/s\); 1 distinct output\(s\)$/);
    const again = await runCli(['simulate', 'examples/wordcount.ts', '--seed', '5', '-p', '3', '--trace']);
    expect(again.stdout).toContain(lines[0]!);
    expect(again.stdout).toMatch(/ {2}step 1: /);
  });

  test('simulate names the seed and the command that replays a failure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
    const file = join(dir, 'flaky.mts');
    writeFileSync(
      file,
      `import { job } from 'tidemark';
export default job((env) => {
  env.fromArray([1, 2, 3, 4], { parallel: true }).map((x) => { if (x === 4) throw new Error('four'); return x; }).print();
});
`,
    );
    const r = await runCli(['simulate', file, '--seed', '3', '-p', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `simulated run failed with seed 3; replay it with tidemark simulate ${file} --seed 3 --parallelism 2`,
    );
  });

  test.each([
    ['in one thread', []],
    ['on 2 slots', ['-p', '2', '--slots', '2']],
  ])(
    'piped into head, run ends quietly when head goes away (%s), as a Unix tool does',
    async (_how, args) => {
      const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
      const file = join(dir, 'many.mts');
      writeFileSync(
        file,
        `import { job } from 'tidemark';
export default job((env) => {
  env.fromGenerator((i) => i, { count: 10_000_000 }).print();
});
`,
      );
      const command = [process.execPath, BIN, 'run', file, ...args].map((a) => `'${a}'`).join(' ');
      const r = await new Promise<CliResult>((resolve, reject) => {
        const child = spawn('bash', ['-c', `${command} | head -2; echo "exit \${PIPESTATUS[0]}" >&2`], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      expect(r.stdout.trimEnd().split('\n')).toHaveLength(2);
      // No EPIPE stack: the status of a process ended by SIGPIPE (128 + 13), nothing said.
      expect(r.stderr).toBe('exit 141\n');
    },
  );

  test('--help and --version', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('run [options] <job>');
    expect(help.stdout).toContain('plan [options] <job>');
    const version = await runCli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  test('usage errors give one clear line and exit code 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
    const noJob = join(dir, 'no-job.mts');
    writeFileSync(noJob, 'export const x = 1;\n');
    const cases: [string[], RegExp][] = [
      [['run', 'examples/wordcount.ts', '--bogus'], /^tidemark: unknown option '--bogus'\n$/],
      [['run', join(dir, 'missing.ts')], /^tidemark: job module not found: .*missing\.ts\n$/],
      [['run', noJob], /^tidemark: .*no-job\.mts does not export a job: its default export must be job\(/],
      [
        ['run', 'examples/wordcount.ts', '--parallelism', 'four'],
        /^tidemark: option '-p, --parallelism <n>' argument 'four' is invalid/,
      ],
      [['frobnicate'], /^tidemark: unknown command 'frobnicate'/],
      [
        [
          'run',
          'examples/wordcount.ts',
          '--listen',
          '127.0.0.1:1',
          '--heartbeat-interval',
          '2s',
          '--heartbeat-timeout',
          '1s',
        ],
        /^tidemark: --heartbeat-timeout \(1000 ms\) must be longer than --heartbeat-interval \(2000 ms\)\n$/,
      ],
      [
        ['plan', 'examples/wordcount.ts', '--format', 'svg'],
        /^tidemark: option '-f, --format <format>' argument 'svg' is invalid/,
      ],
      // Contradictory flags, and flags that would be ignored, are refused rather than ignored.
      [
        ['run', 'examples/wordcount.ts', '--listen', '127.0.0.1:6123', '--slots', '2'],
        /^tidemark: --slots and --listen cannot be used together/,
      ],
      [
        ['run', 'examples/wordcount.ts', '--task-managers', '2'],
        /^tidemark: --task-managers needs --listen\n$/,
      ],
      [
        ['run', 'examples/wordcount.ts', '--token', 'long-enough-token', '--wait', '1m'],
        /^tidemark: --token, --wait need --listen\n$/,
      ],
      [
        ['run', 'examples/wordcount.ts', '--retain', '3'],
        /^tidemark: --retain needs --checkpoint-interval\n$/,
      ],
      [
        ['run', 'examples/wordcount.ts', '--allow-non-restored-state'],
        /^tidemark: --allow-non-restored-state needs --restore\n$/,
      ],
      [
        ['run', 'examples/wordcount.ts', '-p', '8', '--max-parallelism', '4'],
        /^tidemark: --parallelism 8 is greater than --max-parallelism 4\n$/,
      ],
      [
        ['plan', 'examples/wordcount.ts', '-p', '8', '--max-parallelism', '4'],
        /^tidemark: --parallelism 8 is greater than --max-parallelism 4\n$/,
      ],
      // A bad --listen address fails at once, before "waiting for task managers".
      [
        ['run', 'examples/wordcount.ts', '--listen', 'nowhere'],
        /^tidemark: --listen 'nowhere' is not host:port/,
      ],
      [
        // An address of a documentation network (RFC 5737) that this host does not have.
        ['run', 'examples/wordcount.ts', '--listen', '192.0.2.77:6123', '--token', 'long-enough-token'],
        /^tidemark: cannot listen on 192\.0\.2\.77:6123: .*EADDRNOTAVAIL/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(pattern);
      expect(r.stderr.trimEnd().split('\n').length, args.join(' ')).toBe(1);
    }
  });

  test('a syntax error in a job module names the file, line and column', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
    const body = `import { job } from 'tidemark';
export default job((env) => {
  env.fromElements(1, 2).map((x) => x +).print();
});
`;
    for (const name of ['broken.ts', 'broken.mts', 'broken.mjs']) writeFileSync(join(dir, name), body);
    writeFileSync(join(dir, 'helper.mts'), 'export const n: number = ;\n');
    writeFileSync(
      join(dir, 'uses-helper.mts'),
      `import { job } from 'tidemark';
import { n } from './helper.mts';
export default job((env) => { env.fromElements(n).print(); });
`,
    );
    const cases: [string, string][] = [
      ['broken.ts', `${join(dir, 'broken.ts')}:3:40: Unexpected ")"`],
      ['broken.mts', `${join(dir, 'broken.mts')}:3:40: Unexpected ")"`],
      // JavaScript (V8 does not say where): the same place.
      ['broken.mjs', `${join(dir, 'broken.mjs')}:3:40: Unexpected ")"`],
      ['uses-helper.mts', `${join(dir, 'helper.mts')}:1:26: Unexpected ";"`],
    ];
    for (const [name, where] of cases) {
      const r = await runCli(['run', join(dir, name)]);
      expect(r.code, name).toBe(2);
      expect(r.stderr, name).toBe(
        `tidemark: could not load job module ${join(dir, name)}: syntax error at ${where}\n`,
      );
    }
  });

  test('a job module outside any package (no package.json near it) loads as the ES module it is', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
    const job = `import { job } from 'tidemark';
export default job((env) => {
  env.fromElements('a', 'b', 'a').map((w) => ({ w, n: 1 })).keyBy((r) => r.w)
    .reduce((a, b) => ({ w: a.w, n: a.n + b.n })).printSummary((r) => r.w, (r) => r.n);
});
`;
    writeFileSync(join(dir, 'loose.ts'), job);
    writeFileSync(join(dir, 'loose.js'), job);
    for (const name of ['loose.ts', 'loose.js']) {
      const r = await runCli(['run', name], { cwd: dir });
      expect(r.stderr, name).toBe('');
      expect(r.code, name).toBe(0);
      expect(lastLine(r.stdout)).toBe('{"a":2,"b":1}');
    }
    // In a package that says it is CommonJS, an ES module is refused in one line that says what to do.
    const cjs = join(dir, 'cjs');
    mkdirSync(cjs);
    writeFileSync(join(cjs, 'package.json'), '{"type":"commonjs"}');
    writeFileSync(join(cjs, 'job.ts'), job);
    const r = await runCli(['run', join(cjs, 'job.ts')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `tidemark: could not load job module ${join(cjs, 'job.ts')}: it is an ES module (import/export) in a CommonJS package ("type": "commonjs" in its package.json): name it .mts, or set "type": "module"\n`,
    );
  });

  test('a module that runs its job itself (env.execute() at its top level) runs once; job flags, plan and simulate refuse it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
    const program = (map: string) => `import { StreamExecutionEnvironment } from 'tidemark';
const env = new StreamExecutionEnvironment({ parallelism: 2, jobName: 'tour' });
const out = env.fromArray([1, 2, 3, 4], { parallel: true }).map(${map}).collect();
console.log('starting');
const result = await env.execute();
console.log('sum', out.values.reduce((a, b) => a + b, 0), result.metrics.sourceRecords);
`;
    const tour = join(dir, 'tour.mts');
    writeFileSync(tour, program('(x) => x * 10'));
    const ran = await runCli(['run', tour]);
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    expect(ran.stdout).toBe('starting\nsum 100 4\n');

    const flagged = await runCli(['run', tour, '-p', '3', '--checkpoint-interval', '1s']);
    expect(flagged.code).toBe(2);
    expect(flagged.stderr).toBe(
      `tidemark: ${tour} runs its job itself when it is loaded (env.execute()): --parallelism, --checkpoint-interval apply only to a module whose default export is job((env) => { ... })\n`,
    );
    // Refused before its job ran.
    expect(flagged.stdout).toBe('starting\n');
    for (const command of ['plan', 'simulate']) {
      const r = await runCli([command, tour]);
      expect(r.code, command).toBe(2);
      expect(r.stderr, command).toMatch(
        new RegExp(
          `^tidemark: .*tour\\.mts runs its job itself when it is loaded \\(env\\.execute\\(\\)\\); tidemark ${command} needs a module whose default export is job\\(`,
        ),
      );
      expect(r.stdout, command).toBe('starting\n');
    }

    const failing = join(dir, 'failing-tour.mts');
    writeFileSync(failing, program("(x) => { if (x === 3) throw new Error('three'); return x; }"));
    const failed = await runCli(['run', failing]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /^tidemark: job 'tour' failed: operator 'map' \(\d+-map\) subtask \d\/2 of job 'tour': user function threw on record 3: three\n$/,
    );
  });

  test('a failing job exits 1 and names the operator and record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
    const file = join(dir, 'failing.mts');
    writeFileSync(
      file,
      `import { job } from 'tidemark';
export default job((env) => {
  env.fromElements(1, 2, 3).map((x) => { if (x === 2) throw new Error('two is not allowed'); return x; }).name('check').print();
});
`,
    );
    for (const args of [[], ['-p', '2', '--slots', '2']]) {
      const r = await runCli(['run', file, ...args]);
      expect(r.code).toBe(1);
      // One line: the causes the message already says are not repeated ("caused by: ...").
      expect(r.stderr).toMatch(
        /^tidemark: job 'failing' failed: operator 'check' \(\d+-map\) subtask \d\/\d of job 'failing': user function threw on record 2: two is not allowed\n$/,
      );
    }
  });

  /** Runs the CLI with a module trace; the URLs of the modules it loaded. */
  async function loadedModules(args: string[]): Promise<string[]> {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-trace-'));
    const trace = join(dir, 'modules.txt');
    const hook = pathToFileURL(join(import.meta.dirname, '../helpers/module-trace.mjs')).href;
    try {
      const r = await runCli(args, {
        env: { NODE_OPTIONS: `--import=${hook}`, TIDEMARK_MODULE_TRACE: trace },
      });
      expect(r.code).toBe(0);
      return readFileSync(trace, 'utf8').trim().split('\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const toolkit = /\/runtime\/testing\/|\/node_modules\/fast-check\//;

  test.each([
    ['in one thread', ['run', 'examples/wordcount.ts']],
    ['on 2 slots', ['run', 'examples/wordcount.ts', '--slots', '2', '-p', '2']],
  ])('tidemark run %s does not load the testing toolkit', async (_how, args) => {
    const loaded = await loadedModules(args);
    expect(loaded).toContainEqual(expect.stringMatching(/\/runtime\/cli\/run-command\.[jt]s$/));
    expect(loaded.filter((url) => toolkit.test(url))).toEqual([]);
  });

  test('tidemark simulate loads the simulation of the testing toolkit (the trace sees it)', async () => {
    const loaded = await loadedModules(['simulate', 'examples/wordcount.ts']);
    expect(loaded).toContainEqual(expect.stringMatching(/\/runtime\/testing\/simulation\.[jt]s$/));
  });

  test('an invalid graph exits 1 with the validation error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-cli-'));
    const file = join(dir, 'dup.mts');
    writeFileSync(
      file,
      `import { job } from 'tidemark';
export default job((env) => {
  const s = env.fromElements(1);
  s.map((x) => x).uid('x').print();
  s.map((x) => x).uid('x').print();
});
`,
    );
    const r = await runCli(['plan', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("duplicate uid 'x'");
  });
});
