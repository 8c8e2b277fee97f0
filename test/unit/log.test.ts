// The logger (runtime/log.ts): the line format as tidemark always wrote, JSON records with their
// fields, levels, and no URL password in any record.
import { afterEach, describe, expect, test } from 'vitest';
import {
  configureLogging,
  defaultLogSettings,
  errorFields,
  jobLogger,
  log,
  logSettings,
  redactSecrets,
  setLogOutput,
} from '../../runtime/log.js';
import { UserFunctionError } from '../../state/errors.js';

let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  configureLogging({ level: 'info', format: 'line' });
});

function capture(): string[] {
  const lines: string[] = [];
  restore = setLogOutput((text) => lines.push(text));
  return lines;
}

describe('logs', () => {
  test('the line format: tidemark: for the command, warnings tagged, [job] for a job, [taskmanager]', () => {
    configureLogging({ level: 'info', format: 'line' });
    const lines = capture();
    log.error('no such file');
    log.warn('a password on the command line');
    jobLogger('pageviews').info('restored from checkpoint 3', { checkpoint: 3 });
    log.child({ component: 'taskmanager' }, { linePrefix: '[taskmanager] ' }).info('joined');
    jobLogger('pageviews').debug('not shown at info');
    expect(lines).toEqual([
      'tidemark: no such file\n',
      'tidemark: warning: a password on the command line\n',
      '[pageviews] restored from checkpoint 3\n',
      '[taskmanager] joined\n',
    ]);
  });

  test('json: one object a line with level, time, msg and the fields of the logger and the call', () => {
    configureLogging({ level: 'debug', format: 'json' });
    expect(logSettings()).toMatchObject({ level: 'debug', format: 'json' });
    const lines = capture();
    const slot = jobLogger('j', { component: 'slot', slot: 1 });
    slot.debug('checkpoint 4 completed', { checkpoint: 4, vertex: 'map', subtask: 1 });
    slot.trace('not shown at debug');
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(r).toMatchObject({
      level: 'debug',
      msg: 'checkpoint 4 completed',
      job: 'j',
      component: 'slot',
      slot: 1,
      checkpoint: 4,
      vertex: 'map',
      subtask: 1,
      pid: process.pid,
    });
    expect(Number.isNaN(Date.parse(r.time as string))).toBe(false);
  });

  test('pretty: time, level, message and fields on one line', () => {
    configureLogging({ level: 'info', format: 'pretty', colorize: false });
    const lines = capture();
    jobLogger('j').warn('checkpoint 2 failed', { checkpoint: 2 });
    expect(lines.join('')).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: checkpoint 2 failed \{"job":"j","checkpoint":2\}\n$/,
    );
  });

  test('no URL password reaches a record, in any format', () => {
    expect(redactSecrets('cannot reach redis://user:s3cret@host:6379/0 (timeout)')).toBe(
      'cannot reach redis://user:***@host:6379/0 (timeout)',
    );
    expect(redactSecrets('rediss://:pw@a and redis://b:6379')).toBe('rediss://:***@a and redis://b:6379');
    for (const format of ['line', 'json'] as const) {
      configureLogging({ level: 'info', format });
      const lines = capture();
      log.error('redis://u:hunter2@h failed');
      expect(lines.join('')).not.toContain('hunter2');
      restore!();
    }
  });

  test('the settings of the environment, else info and line off a terminal', () => {
    expect(defaultLogSettings({ TIDEMARK_LOG_LEVEL: 'warn', TIDEMARK_LOG_FORMAT: 'json' })).toMatchObject({
      level: 'warn',
      format: 'json',
    });
    const d = defaultLogSettings({ TIDEMARK_LOG_LEVEL: 'loud' });
    expect(d.level).toBe('info');
    expect(d.format).toBe(process.stderr.isTTY === true ? 'pretty' : 'line');
  });

  test('the fields of an error: the operator and subtask that failed', () => {
    const e = new UserFunctionError(
      'boom',
      { jobName: 'j', operatorId: '2-map', operatorName: 'parse', subtaskIndex: 1 },
      undefined,
      new Error('x'),
    );
    expect(errorFields(new Error('wrapped', { cause: e }))).toEqual({
      vertex: 'parse',
      operator: '2-map',
      subtask: 1,
      errorName: 'Error',
    });
  });
});
