/**
 * The channel microbenchmark: records per second through one channel of the runtime, with its
 * real classes (`RemoteOutChannel` → `RemoteInChannel`: batching, encoding, credits), between two
 * threads (a message port, as between two slots of one process) and between two processes (a
 * TCP connection on loopback, as between task managers), for a small numeric record and for a
 * Nexmark bid.
 *
 *   node --import ./bench/register.mjs bench/channels.ts [--records N] [--json]
 * (`npm run bench` runs it too, with its figures in the table.)
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  isMainThread,
  MessageChannel,
  type MessagePort,
  parentPort,
  receiveMessageOnPort,
  Worker,
  workerData,
} from 'node:worker_threads';
import { nexmarkEvent } from '../examples/nexmark/generator.js';
import type { Frame } from '../runtime/distributed/frame-codec.js';
import { RemoteInChannel, RemoteOutChannel } from '../runtime/distributed/remote-channels.js';
import { REMOTE_CREDITS_PER_LOCAL } from '../runtime/distributed/slot.js';
import { connectPeer, Link } from '../runtime/distributed/wire.js';
import { InputGate, OutputGate, RECORD } from '../runtime/task/channel.js';

/** Events a channel between slots may have in flight (with the default buffer capacity). */
const CAPACITY = REMOTE_CREDITS_PER_LOCAL * 1024;

type Kind = 'numeric' | 'bid';

/** `count` records of a kind, made before the clock starts (a cycle of 4096 distinct ones). */
function records(kind: Kind, count: number): unknown[] {
  const distinct: unknown[] = [];
  if (kind === 'numeric') for (let i = 0; i < 4096; i++) distinct.push({ k: i & 1023, v: i * 0.5 });
  else
    for (let n = 0; distinct.length < 4096; n++) {
      const e = nexmarkEvent(n);
      if (e.kind === 'bid') distinct.push(e);
    }
  return Array.from({ length: count }, (_x, i) => distinct[i % distinct.length]);
}

/** What carries a channel's messages: a port, or a TCP link made to look like one. */
interface Port {
  postMessage(m: unknown, transfer?: ArrayBuffer[]): void;
}

/** The producer side: pushes `values` as fast as credits allow; resolves when all were credited back. */
async function produce(
  values: readonly unknown[],
  port: Port,
  poll: () => unknown[] | Promise<unknown[]>,
): Promise<void> {
  const gate = new OutputGate();
  const out = new RemoteOutChannel('bench', port as MessagePort, gate, CAPACITY, 'bench');
  let acked = 0;
  let i = 0;
  while (acked < values.length) {
    while (i < values.length && gate.full === 0) out.push(RECORD, values[i++], i);
    out.flush();
    for (const m of await poll()) {
      const c = m as { type: string; n: number };
      if (c.type === 'credit') {
        acked += c.n;
        out.credit(c.n);
      }
    }
  }
}

/** The consumer side: reads every frame's records and returns credits; resolves after `count`. */
function consume(count: number, port: Port, onMessage: (f: (m: unknown) => void) => void): Promise<void> {
  const gate = new InputGate();
  const ch = new RemoteInChannel('bench', port as MessagePort, CAPACITY, gate, 1, 'bench');
  let seen = 0;
  return new Promise((resolve) => {
    onMessage((m) => {
      const f = m as { type: string; frame: Frame };
      if (f.type !== 'frame') return;
      ch.receive(f.frame);
      while (ch.size > 0) {
        ch.pop();
        seen++;
      }
      ch.returnCredits();
      if (seen >= count) resolve();
    });
  });
}

/** Records per second from this thread to a worker thread. */
async function betweenThreads(kind: Kind, count: number): Promise<number> {
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL('./thread.mjs', import.meta.url), {
    workerData: { module: import.meta.url, role: 'consumer', count },
  });
  worker.postMessage(port2, [port2]);
  await once(worker, 'message'); // ready
  const values = records(kind, count);
  const t0 = performance.now();
  await produce(values, port1, async () => {
    const got: unknown[] = [];
    for (let m = receiveMessageOnPort(port1); m !== undefined; m = receiveMessageOnPort(port1))
      got.push(m.message);
    if (got.length === 0) {
      const [m] = await once(port1, 'message');
      got.push(m);
    }
    return got;
  });
  const seconds = (performance.now() - t0) / 1000;
  port1.close();
  await worker.terminate();
  return count / seconds;
}

/** A TCP link as a port: messages are msgpackr frames (as between task managers). */
function linkPort(link: Link): Port {
  return { postMessage: (m) => link.send(m) };
}

/** Records per second from this process to a child process over TCP on loopback. */
async function betweenProcesses(kind: Kind, count: number): Promise<number> {
  const token = 'bench-token';
  const child = fork(fileURLToPath(import.meta.url), ['--consumer-process', String(count), token], {
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [port] = (await once(child, 'message')) as [number];
  const link = await connectPeer('127.0.0.1', port, token, { role: 'peer', from: 0 });
  const inbox: unknown[] = [];
  let wake: (() => void) | undefined;
  link.on('message', (m) => {
    inbox.push(m);
    wake?.();
  });
  const values = records(kind, count);
  const t0 = performance.now();
  await produce(values, linkPort(link), async () => {
    if (inbox.length === 0) await new Promise<void>((r) => (wake = r));
    wake = undefined;
    return inbox.splice(0);
  });
  const seconds = (performance.now() - t0) / 1000;
  link.close();
  child.kill();
  return count / seconds;
}

/** Figures of the channel benchmark, records per second. */
export interface ChannelBenchResult {
  records: number;
  threads: { numeric: number; bid: number };
  processes: { numeric: number; bid: number };
}

/** Runs the benchmark (best of `repeat` runs per case). */
export async function runChannelBench(records = 1_000_000, repeat = 3): Promise<ChannelBenchResult> {
  const best = async (f: () => Promise<number>) => {
    let b = 0;
    for (let i = 0; i < repeat; i++) b = Math.max(b, await f());
    return b;
  };
  return {
    records,
    threads: {
      numeric: await best(() => betweenThreads('numeric', records)),
      bid: await best(() => betweenThreads('bid', records)),
    },
    processes: {
      numeric: await best(() => betweenProcesses('numeric', records)),
      bid: await best(() => betweenProcesses('bid', records)),
    },
  };
}

/** The report lines of a result. */
export function formatChannelBench(r: ChannelBenchResult): string[] {
  const m = (x: number) => `${(x / 1e6).toFixed(2)} M records/s`;
  return [
    `channels (one channel, ${r.records.toLocaleString('en')} records, best of runs; targets: threads 6 M numeric, 2 M bids):`,
    `  between two threads     numeric ${m(r.threads.numeric)}   Nexmark bid ${m(r.threads.bid)}`,
    `  between two processes   numeric ${m(r.processes.numeric)}   Nexmark bid ${m(r.processes.bid)}`,
  ];
}

if (!isMainThread && (workerData as { role?: string } | undefined)?.role === 'consumer') {
  // A consumer thread: the port comes in the first message.
  parentPort!.once('message', (port: MessagePort) => {
    void consume((workerData as { count: number }).count, port, (f) => port.on('message', f)).then(() => {});
    parentPort!.postMessage('ready');
  });
} else if (process.argv[2] === '--consumer-process') {
  const count = Number(process.argv[3]);
  const token = process.argv[4]!;
  const server = createServer((socket: Socket) => {
    const link = new Link(socket, 'producer');
    void import('../runtime/distributed/wire.js').then(async ({ acceptPeer }) => {
      await acceptPeer(link, token);
      await consume(count, linkPort(link), (f) => link.on('message', f));
    });
  });
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as { port: number }).port));
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : Number(process.argv[i + 1]);
  };
  const result = await runChannelBench(arg('--records') ?? 1_000_000, arg('--repeat') ?? 3);
  // --result: one line for bench/run.ts, which runs this in a process of its own.
  if (process.argv.includes('--result')) process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  else if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
  else for (const line of formatChannelBench(result)) console.log(line);
}
