// One error hierarchy: every class tidemark declares crosses threads and processes (serializeError,
// msgpackr or structured clone, deserializeError) as itself, with its code, context, own fields,
// stack and cause chain; `instanceof` holds across two copies of the errors module.
import { describe, expect, test } from 'vitest';
import { UsageError } from '../../runtime/cli/load-job.js';
import { NoResourceAvailableError } from '../../runtime/distributed/cluster.js';
import { WireError } from '../../runtime/distributed/wire.js';
import { InjectedFailure } from '../../runtime/testing/exactly-once.js';
import { CheckNotExercisedError } from '../../runtime/testing/not-exercised.js';
import { LateDataLostError } from '../../runtime/testing/reference.js';
import { SimulationFailure } from '../../runtime/testing/simulation.js';
import { StateNotCleanedError } from '../../runtime/testing/state-cleanup.js';
import {
  deserializeError,
  InvalidArgumentError,
  InvalidGraphError,
  InvalidRecordError,
  JobCancelledError,
  JobFailedError,
  registerErrorClass,
  registeredErrorClasses,
  type SerializedError,
  StateError,
  serializeError,
  TidemarkError,
  UserFunctionError,
} from '../../state/errors.js';
import { KeyGroupMismatchError } from '../../state/heap-backend.js';
import { decode, encode, IncompatibleCheckpointError } from '../../state/snapshot/format.js';
import {
  CheckpointNotFoundError,
  CommitOutcomeUnknownError,
  CorruptChunkError,
  FencedError,
  StaleCheckpointError,
  StorageError,
} from '../../state/storage/checkpoint-storage.js';
import { LeadershipError } from '../../state/storage/leases.js';

const where = { jobName: 'orders', operatorId: 'op-7', operatorName: 'map', subtaskIndex: 1 };

/** One instance of every error class tidemark declares, by registered name. */
const samples: Record<string, () => Error> = {
  TidemarkError: () => new TidemarkError('INTERNAL_ERROR', 'stalled', { jobName: 'orders' }),
  InvalidArgumentError: () => new InvalidArgumentError('parallelism must be a positive integer, got 0'),
  InvalidRecordError: () => new InvalidRecordError('not a JSON line', { operatorName: 'file source' }),
  StateError: () => new StateError("value state 'n' is keyed state", where),
  UserFunctionError: () =>
    new UserFunctionError('map threw on record {"id":1}', where, '{"id":1}', new RangeError('too big')),
  InvalidGraphError: () => new InvalidGraphError('cycle', { operatorName: 'map' }),
  JobFailedError: () =>
    new JobFailedError(
      "job 'orders' failed",
      { jobName: 'orders' },
      new UserFunctionError('map threw', where, undefined, new Error('boom')),
    ),
  JobCancelledError: () => new JobCancelledError('orders'),
  StorageError: () =>
    new StorageError('cannot reach redis://x:6379', {
      jobName: 'orders',
      checkpointId: 4,
      cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
    }),
  FencedError: () => new FencedError('orders', 3, 5),
  LeadershipError: () =>
    new LeadershipError(
      'orders',
      "job 'orders' already has a job manager: pid 7 on host a, listening on a:6123",
    ),
  StaleCheckpointError: () => new StaleCheckpointError('orders', 4, 9),
  CorruptChunkError: () => new CorruptChunkError('orders', 'c-12', 'checksum mismatch'),
  CheckpointNotFoundError: () => new CheckpointNotFoundError('orders', 'checkpoint 3', 3),
  CommitOutcomeUnknownError: () =>
    new CommitOutcomeUnknownError('orders', 8, 'timeout', new Error('Command timed out')),
  IncompatibleCheckpointError: () => new IncompatibleCheckpointError('version 9 is not supported', 12),
  KeyGroupMismatchError: () => new KeyGroupMismatchError("key 'a' is in key group 3"),
  NoResourceAvailableError: () =>
    new NoResourceAvailableError("job 'orders' has no slots to run on", 'orders'),
  WireError: () => new WireError('127.0.0.1:4000 failed to authenticate (wrong token)'),
  UsageError: () => new UsageError('job module not found: x.ts'),
  SimulationFailure: () =>
    new SimulationFailure(7, 'tidemark simulate job.ts --seed 7', new Error('diverged')),
  InjectedFailure: () => new InjectedFailure('map (call 3)'),
  CheckNotExercisedError: () => new CheckNotExercisedError('checkExactlyOnce restored from no checkpoint'),
  LateDataLostError: () =>
    new LateDataLostError('key "k0": 2 in the input, 1 counted in results, 0 in the late output: 1 lost', [
      { key: 'k0', input: 2, counted: 1, late: 0 },
    ]),
  StateNotCleanedError: () =>
    new StateNotCleanedError("operator 'dedup', state 'seen': 1 key: \"k0\"", [
      { operator: 'dedup', state: 'seen', kind: 'state', keys: ['k0'] },
    ]),
};

/** Everything that must survive the trip, down the cause chain: class, name, message, stack, own fields. */
function expectSame(back: unknown, original: unknown): void {
  for (let b = back, o = original, depth = 0; o !== undefined; depth++) {
    expect(b, `cause ${depth}`).toBeInstanceOf(Error);
    const [be, oe] = [b as Error, o as Error];
    expect(Object.getPrototypeOf(be), `class of cause ${depth}`).toBe(Object.getPrototypeOf(oe));
    expect({ name: be.name, message: be.message, stack: be.stack, own: { ...be } }).toEqual({
      name: oe.name,
      message: oe.message,
      stack: oe.stack,
      own: { ...oe },
    });
    [b, o] = [be.cause, oe.cause];
  }
}

const transports: Record<string, (s: SerializedError) => SerializedError> = {
  msgpackr: (s) => decode<SerializedError>(encode(s)),
  'structured clone (postMessage)': (s) => structuredClone(s),
};

describe('serializeError / deserializeError', () => {
  test('every registered error class has a sample here', () => {
    const ours = [...registeredErrorClasses()]
      .filter(([, cls]) => cls === TidemarkError || cls.prototype instanceof TidemarkError)
      .map(([name]) => name);
    expect(ours.sort()).toEqual(Object.keys(samples).sort());
  });

  for (const [transport, carry] of Object.entries(transports))
    test.each(Object.keys(samples))(`%s crosses ${transport} as itself`, (name) => {
      const original = samples[name]!();
      expect(original.name).toBe(name);
      const back = deserializeError(carry(serializeError(original)));
      expect(back).toBeInstanceOf(registeredErrorClasses().get(name)!);
      expect(back).toBeInstanceOf(TidemarkError);
      expectSame(back, original);
      expect((back as TidemarkError).code).toBe((original as TidemarkError).code);
      expect((back as TidemarkError).context).toEqual((original as TidemarkError).context);
    });

  test("a subclass's own fields and the causes' classes come back", () => {
    const e = deserializeError(decode(encode(serializeError(samples.JobFailedError!()))));
    expect(e).toBeInstanceOf(JobFailedError);
    const fn = e.cause as UserFunctionError;
    expect(fn).toBeInstanceOf(UserFunctionError);
    expect(fn.context).toEqual(where);
    expect(fn.cause).toBeInstanceOf(Error);
    const sim = deserializeError(structuredClone(serializeError(samples.SimulationFailure!())));
    expect(sim).toMatchObject({ seed: 7, replay: 'tidemark simulate job.ts --seed 7', code: 'JOB_FAILED' });
    const storage = deserializeError(decode(encode(serializeError(samples.StorageError!()))));
    expect(storage.cause).toMatchObject({ message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' });
  });

  test('built-in classes revive as themselves; a thrown non-error becomes an Error with its text', () => {
    const e = deserializeError(decode(encode(serializeError(new TypeError('x is not a function')))));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.name).toBe('TypeError');
    expect(deserializeError(serializeError('plain string'))).toMatchObject({ message: 'plain string' });
  });

  test('a class not registered on this side revives as its nearest registered ancestor', () => {
    class QuotaError extends StorageError {
      constructor() {
        super('quota exceeded', { jobName: 'orders' });
        this.name = 'QuotaError';
      }
    }
    const s = serializeError(new QuotaError());
    expect(s.classes).toEqual(['StorageError', 'TidemarkError', 'Error']);
    const other: SerializedError = { ...s, classes: ['QuotaError', ...(s.classes ?? [])] };
    const back = deserializeError(decode(encode(other)));
    expect(back).toBeInstanceOf(StorageError);
    expect(back).toMatchObject({ name: 'QuotaError', code: 'STORAGE_ERROR', context: { jobName: 'orders' } });
  });

  test('a registered user class revives with its fields; fields that are not plain data are left out', () => {
    class OrderRejected extends Error {
      readonly retry = () => {};
      constructor(readonly orderId: number) {
        super(`order ${orderId} rejected`);
        this.name = 'OrderRejected';
      }
    }
    registerErrorClass('OrderRejected', OrderRejected);
    expect(() => registerErrorClass('OrderRejected', class extends Error {})).toThrow(InvalidArgumentError);
    const back = deserializeError(decode(encode(serializeError(new OrderRejected(42)))));
    expect(back).toBeInstanceOf(OrderRejected);
    expect({ ...back }).toEqual({ name: 'OrderRejected', orderId: 42 });
  });

  test('a cause chain that loops is cut', () => {
    const a = new TidemarkError('INTERNAL_ERROR', 'a');
    const b = new TidemarkError('INTERNAL_ERROR', 'b', {}, { cause: a });
    Object.defineProperty(a, 'cause', { value: b });
    let depth = 0;
    for (let s: SerializedError | undefined = serializeError(a); s !== undefined; s = s.cause) depth++;
    expect(depth).toBe(9);
  });
});

describe('instanceof across two copies of tidemark', () => {
  test('an error made by another copy of the module is an instance of this copy’s class', async () => {
    // NOTE: a second instance of the same module, as a job module resolving its own installed copy.
    const url = `${new URL('../../state/errors.ts', import.meta.url).href}?copy`;
    const copy = (await import(/* @vite-ignore */ url)) as typeof import('../../state/errors.js');
    expect(copy.InvalidArgumentError).not.toBe(InvalidArgumentError);
    const theirs = new copy.InvalidArgumentError('bad');
    expect(theirs).toBeInstanceOf(InvalidArgumentError);
    expect(theirs).toBeInstanceOf(TidemarkError);
    expect(theirs).not.toBeInstanceOf(StateError);
    expect(new copy.InvalidGraphError('x')).not.toBeInstanceOf(InvalidArgumentError);
    expect(new Error('plain')).not.toBeInstanceOf(TidemarkError);
    expect(deserializeError(copy.serializeError(theirs))).toBeInstanceOf(InvalidArgumentError);
  });
});
