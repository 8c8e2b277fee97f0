/**
 * Task managers: processes with N slots (worker threads) that join a job manager over TCP, so a
 * job runs on several hosts. The job manager (`tidemark run --listen host:port --task-managers N`)
 * waits for its task managers (`tidemark taskmanager --job-manager host:port --slots N`), then
 * deploys the slots: each task manager starts its slots' worker threads; slots in one process talk
 * over message channels, slots in different processes over direct task-manager-to-task-manager
 * connections. Every connection is authenticated with the shared token (or mutual TLS), and is
 * TLS when the options give certificates (see `wire.ts`). The job manager and each
 * task manager exchange heartbeats: one that hears nothing from the other for the heartbeat
 * timeout gives it up (a host behind a cut link is silent, it closes nothing).
 *
 * NOTE: every host runs the same project checkout: the job module's path is sent relative to the
 * job manager's working directory and resolved against the task manager's.
 */

import { EventEmitter } from 'node:events';
import type { Server } from 'node:net';
import { relative, resolve } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { TidemarkError } from '../../state/errors.js';
import { writeStdoutLines } from '../execution/results.js';
import type { LogLevel } from '../log.js';
import { acquireNodeMetrics } from '../observe/node-metrics.js';
import { type SlotEvents, type SlotHandle, type SlotProvider, startWorker } from './cluster.js';
import type {
  FromTaskManager,
  PeerMessage,
  SlotInit,
  SlotToSlot,
  ToSlot,
  ToTaskManager,
} from './protocol.js';
import {
  type ClusterTlsOptions,
  checkAuthentication,
  connectPeer,
  DEFAULT_FRAME_TIMEOUT_MS,
  type Link,
  listenPeers,
  parseAddress,
  WireError,
  watchSilence,
} from './wire.js';

/** How often the job manager sends each task manager a heartbeat by default (Flink's `heartbeat.interval`). */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
/** How long either side waits for a word from the other by default (Flink's `heartbeat.timeout`). */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 50_000;

/** Options of {@link TaskManagerPool.listen}. */
export interface TaskManagerPoolOptions {
  /** How long to wait for the task managers (default 2 minutes). */
  timeoutMs?: number;
  /** How often to send each task manager a heartbeat (default {@link DEFAULT_HEARTBEAT_INTERVAL_MS}). */
  heartbeatIntervalMs?: number;
  /**
   * A task manager not heard from for this long is given up: its connection is closed, and the
   * attempt that used it fails and restarts on the others (default {@link DEFAULT_HEARTBEAT_TIMEOUT_MS}).
   */
  heartbeatTimeoutMs?: number;
  /** TLS for every connection (default: plain TCP); task managers must use it too. */
  tls?: ClusterTlsOptions | undefined;
  /**
   * An incomplete frame that gets no byte for this long closes its connection (default: the
   * heartbeat timeout, at least {@link DEFAULT_FRAME_TIMEOUT_MS}).
   */
  frameTimeoutMs?: number | undefined;
  /** Refused connections from one address are logged once per this interval (default 10 s). */
  refusalLogIntervalMs?: number | undefined;
  /**
   * How long a restart that lacks slots (a task manager left) waits for task managers to bring
   * them, before it runs on the slots there are, or fails when there are none (default
   * {@link DEFAULT_SLOT_REQUEST_TIMEOUT_MS}).
   */
  slotRequestTimeoutMs?: number;
  /**
   * Deployments are numbered from this on (exclusive). A job manager that took over from another
   * passes a base above any number the other used (its lease generation times 2^32), so that task
   * managers drop what slots of the other's deployments still send.
   */
  deploymentBase?: number;
  /** Where its lines go, with their level (default `info`). */
  log?: (line: string, level?: LogLevel) => void;
}

/** How long a restart waits for the slots it lacks by default (Flink's `slot.request.timeout`). */
export const DEFAULT_SLOT_REQUEST_TIMEOUT_MS = 5 * 60_000;

interface Registered {
  link: Link;
  slots: number;
  dataHost: string;
  dataPort: number;
  name: string;
  /** False once its connection closed: a lost task manager gets no more slots. */
  alive: boolean;
  /** Why the job manager gave it up (its heartbeats stopped), if it did. */
  lost?: string;
  /** Listeners of the current deployment (replaced by the next one). */
  detach?: () => void;
}

/** The job manager's view of its task managers: a {@link SlotProvider} over TCP. */
export class TaskManagerPool implements SlotProvider {
  private deployments: number;
  /** Slots of the first deployment: what a restart waits for (at most). */
  private planned: number | undefined;
  private constructor(
    private readonly server: Server,
    private readonly managers: Registered[],
    /** Emits 'change' when a task manager joins or leaves. */
    private readonly changes: EventEmitter,
    private readonly options: TaskManagerPoolOptions,
  ) {
    this.deployments = options.deploymentBase ?? 0;
  }

  /** Task managers connected now. */
  get taskManagers(): number {
    return this.live().length;
  }

  /** The task manager that runs slot `slot` of the current deployment (`host:port` of its data connections), if known. */
  slotOwner(slot: number): string | null {
    return this.owners[slot] ?? null;
  }

  private owners: string[] = [];

  /** Total slots of the registered task managers. */
  get slots(): number {
    return this.live().reduce((n, m) => n + m.slots, 0);
  }

  private live(): Registered[] {
    return this.managers.filter((m) => m.alive);
  }

  /**
   * Listens on `address` and waits until `count` task managers with the token joined (or
   * `timeoutMs` passed). Connections that fail authentication (or TLS) are refused and logged,
   * once per address per interval. Every task manager that joined gets heartbeats until it leaves.
   */
  static async listen(
    address: string,
    token: string,
    count: number,
    options: TaskManagerPoolOptions = {},
  ): Promise<TaskManagerPool> {
    const { host, port } = parseAddress(address);
    const intervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    if (!(intervalMs > 0 && heartbeatTimeoutMs > intervalMs))
      throw new TidemarkError(
        'INVALID_ARGUMENT',
        `the heartbeat timeout (${heartbeatTimeoutMs} ms) must be longer than the heartbeat interval (${intervalMs} ms)`,
      );
    checkAuthentication(token, options.tls);
    const managers: Registered[] = [];
    const changes = new EventEmitter();
    const log = options.log ?? (() => {});
    let resolveAll!: () => void;
    const all = new Promise<void>((r) => {
      resolveAll = r;
    });
    const wire = {
      tls: options.tls,
      frameTimeoutMs: options.frameTimeoutMs ?? Math.max(DEFAULT_FRAME_TIMEOUT_MS, heartbeatTimeoutMs),
      refusalLogIntervalMs: options.refusalLogIntervalMs,
      log,
    };
    const server = await listenPeers({ host, port }, token, wire, (link, hello) => {
      link.on('error', (e: Error) => log(`connection from ${link.peer}: ${e.message}`, 'warn'));
      if (hello.role !== 'taskmanager') {
        link.close();
        return;
      }
      const m: Registered = {
        link,
        slots: Number(hello.slots),
        // NOTE: a task manager that did not say its data host is reached where it came from.
        dataHost:
          String(hello.dataHost) || (link.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, ''),
        dataPort: Number(hello.dataPort),
        name: `task manager ${managers.length + 1} (${link.peer}, ${String(hello.slots)} slots)`,
        alive: true,
      };
      managers.push(m);
      log(`${m.name} joined`);
      // NOTE: a task manager behind a cut link or on a hung host closes nothing: only its
      // silence tells. Given up, its connection is closed as if it had left (Flink's
      // heartbeat timeout), and a deployment that used it fails.
      const heartbeat = () =>
        link.send({ type: 'heartbeat', timeoutMs: heartbeatTimeoutMs } satisfies ToTaskManager);
      const beat = setInterval(heartbeat, intervalMs);
      beat.unref();
      heartbeat();
      watchSilence(link, heartbeatTimeoutMs, (silentMs) => {
        m.lost = `missed its heartbeats: nothing heard from it for ${silentMs} ms`;
        log(`${m.name} ${m.lost}; giving it up`, 'warn');
        link.close();
      });
      link.once('close', () => {
        clearInterval(beat);
        m.alive = false;
        log(`${m.name} left`);
        changes.emit('change');
      });
      changes.emit('change');
      if (managers.length === count) resolveAll();
    });
    const timeoutMs = options.timeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_r, rej) => {
      timer = setTimeout(
        () =>
          rej(
            new WireError(`only ${managers.length} of ${count} task managers joined within ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
    });
    try {
      await Promise.race([all, timeout]);
    } catch (e) {
      // The job manager gives the job up: the task managers that joined exit.
      new TaskManagerPool(server, managers, changes, options).shutdown((e as Error).message);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return new TaskManagerPool(server, managers, changes, options);
  }

  /** The port actually listened on. */
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  /**
   * Waits until the task managers connected have the slots an attempt wants (at most those of the
   * first deployment), or the slot request timeout passed, or `signal` aborts. Resolves with the
   * slots there are then.
   */
  async awaitSlots(wanted: number, signal?: AbortSignal): Promise<number> {
    const target = Math.min(wanted, this.planned ?? wanted);
    if (this.slots >= target) return this.slots;
    const timeoutMs = this.options.slotRequestTimeoutMs ?? DEFAULT_SLOT_REQUEST_TIMEOUT_MS;
    const log = this.options.log ?? (() => {});
    log(
      `the job needs ${target} slots and the task managers connected have ${this.slots}: waiting up to ${timeoutMs} ms for task managers to bring more (slot request timeout)`,
      'warn',
    );
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.changes.off('change', check);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const check = () => {
        if (this.slots >= target) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.changes.on('change', check);
      signal?.addEventListener('abort', done, { once: true });
    });
    const slots = this.slots;
    if (signal?.aborted !== true && slots < target && slots > 0)
      log(
        `no more slots came within ${timeoutMs} ms: running on ${slots} of ${target} slots (subtasks share slots)`,
        'warn',
      );
    return slots;
  }

  start(inits: SlotInit[], events: SlotEvents): SlotHandle[] {
    const live = this.live();
    this.planned ??= inits.length;
    if (inits.length > this.slots)
      throw new TidemarkError(
        'JOB_FAILED',
        `the job needs ${inits.length} slots, but the task managers still connected have ${this.slots}`,
      );
    // NOTE: slots go round the task managers (slot 0 on the first, slot 1 on the second, ...),
    // so that a job using fewer slots than there are spreads over every host.
    const owners: number[] = [];
    for (let k = 0; owners.length < inits.length; k++)
      live.forEach((m, i) => {
        if (k < m.slots && owners.length < inits.length) owners.push(i);
      });
    const peers = live.map((m) => ({ host: m.dataHost, port: m.dataPort }));
    // `host:port` where each runs its data connections (as `SubtaskLocation.taskManager` says).
    this.owners = owners.map((i) => `${live[i]!.dataHost}:${live[i]!.dataPort}`);
    const deployment = ++this.deployments;
    const cwd = process.cwd();
    live.forEach((m, i) => {
      m.detach?.();
      const onMessage = (msg: FromTaskManager) => {
        if (msg.type === 'heartbeat' || msg.deployment !== deployment) return;
        if (msg.type === 'slot') events.message(msg.slot, msg.message);
        else events.exit(msg.slot, msg.reason);
      };
      const onClose = () => {
        owners.forEach((o, slot) => {
          if (o === i) events.exit(slot, `${m.name} ${m.lost ?? 'disconnected'} (slot ${slot})`);
        });
      };
      m.link.on('message', onMessage);
      m.link.on('close', onClose);
      m.detach = () => {
        m.link.off('message', onMessage);
        m.link.off('close', onClose);
      };
      const mine = inits
        .filter((_x, slot) => owners[slot] === i)
        .map((init) => ({ ...init, jobPath: relative(cwd, init.jobPath) }));
      m.link.send({ type: 'deploy', deployment, inits: mine, owners, peers } satisfies ToTaskManager);
    });
    return inits.map((_init, slot) => {
      const link = live[owners[slot]!]!.link;
      return {
        post: (message: ToSlot) => link.send({ type: 'to-slot', slot, message } satisfies ToTaskManager),
        terminate: async () => link.send({ type: 'undeploy' } satisfies ToTaskManager),
        kill: async () => link.send({ type: 'kill', slot } satisfies ToTaskManager),
      };
    });
  }

  /**
   * Disconnects the task managers and stops listening. The task managers look for a job manager
   * again (one that lost its leadership leaves them to the next leader).
   */
  close(): void {
    for (const m of this.managers) m.link.close();
    this.server.close();
  }

  /** Tells the task managers that the job ended (they exit), then closes. */
  shutdown(reason: string): void {
    for (const m of this.live()) m.link.send({ type: 'shutdown', reason } satisfies ToTaskManager);
    // NOTE: ended once written (Link.close() destroys the socket, which could drop the message);
    // destroyed if the task manager has not closed its end a moment later.
    for (const m of this.managers) {
      m.link.socket.end();
      setTimeout(() => m.link.close(), 2000).unref();
    }
    this.server.close();
  }
}

/** Options of a task manager process. */
export interface TaskManagerOptions {
  /**
   * The job manager's `host:port`, or several separated by commas (a leader and its standbys): each
   * is tried in turn, and the one that leads accepts.
   */
  jobManager?: string | undefined;
  /**
   * Finds the address of the job manager that leads now (from the high-availability store);
   * throws, saying why, when none does. Tried before `jobManager`.
   */
  findJobManager?: (() => Promise<string>) | undefined;
  /**
   * How long to keep trying to register with a job manager (at the start, and after losing one)
   * before giving up (Flink's `taskmanager.registration.timeout`); default: never give up.
   */
  registrationTimeoutMs?: number | undefined;
  slots: number;
  token: string;
  /** Where other task managers reach this one (default: the address used to reach the job manager). */
  dataHost?: string;
  /** Port of the data connections (default: any free port). */
  dataPort?: number;
  /** TLS for every connection (default: plain TCP); the job manager must use it too. */
  tls?: ClusterTlsOptions | undefined;
  /** An incomplete frame that gets no byte for this long closes its connection (default 60 s). */
  frameTimeoutMs?: number | undefined;
  /** Refused data connections from one address are logged once per this interval (default 10 s). */
  refusalLogIntervalMs?: number | undefined;
  /** Where its lines go, with their level (default `info`). */
  log?: (line: string, level?: LogLevel) => void;
}

/** First and longest wait between attempts to register with a job manager. */
const REGISTRATION_BACKOFF_MS = { initial: 100, max: 2000 };
/** A job manager that closes this many handshakes in a row refuses this task manager for good. */
const HANDSHAKES_CLOSED_FOR_GOOD = 3;
/** A registration that keeps failing the same way is logged again after this long. */
const REGISTRATION_LOG_EVERY_MS = 30_000;

/**
 * Runs a task manager until a job manager tells it the job ended (`shutdown`). It never gives up on
 * a job manager that is not there yet or is gone: it tries again with backoff (up to
 * `registrationTimeoutMs`, if given), keeping its slots, and registers with whichever job manager
 * leads. Losing the job manager (its connection closed, or its heartbeats stopped) stops the
 * slots. Rejects when the token is refused, or when the registration timeout passes.
 */
export async function runTaskManager(options: TaskManagerOptions): Promise<void> {
  const log = options.log ?? (() => {});
  const fixed = (options.jobManager ?? '')
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  for (const a of fixed) parseAddress(a);
  if (fixed.length === 0 && options.findJobManager === undefined)
    throw new WireError('a task manager needs the job manager’s address (host:port) or a way to find it');
  checkAuthentication(options.token, options.tls);
  const wire = {
    tls: options.tls,
    frameTimeoutMs: options.frameTimeoutMs,
    refusalLogIntervalMs: options.refusalLogIntervalMs,
    log: (line: string, level?: LogLevel) => log(`data connection: ${line}`, level),
  };
  // Data connections from other task managers: slot-to-slot messages.
  const relays = new Map<string, MessagePort>(); // `${from}>${to}` → the port feeding slot `to`
  // Another task manager may start sending before this one has its deployment: keep those
  // messages until it has; messages of earlier deployments (before a restart) are dropped.
  let deployment = 0;
  let early: PeerMessage[] = [];
  const receive = (m: PeerMessage) => {
    if (m.deployment === deployment) relays.get(`${m.from}>${m.to}`)?.postMessage(m.message);
    else if (m.deployment > deployment) early.push(m);
  };
  const inbound = new Set<Link>();
  const dataServer: Server = await listenPeers(
    { host: '0.0.0.0', port: options.dataPort ?? 0 },
    options.token,
    wire,
    (link) => {
      inbound.add(link);
      link.once('close', () => inbound.delete(link));
      link.on('error', (e: Error) => log(`data connection from ${link.peer}: ${e.message}`, 'warn'));
      link.on('message', receive);
    },
  );
  const dataPort = (dataServer.address() as { port: number }).port;

  // Node's figures of this process's main thread, sent with its slots' metrics.
  const nodeMetrics = acquireNodeMetrics();
  const workers = new Map<number, SlotHandle>();
  const outbound = new Map<number, Promise<Link>>(); // task manager index → link
  const undeploy = async () => {
    const all = [...workers.values()];
    workers.clear();
    // NOTE: a relay of the last deployment may still hold messages of its stopped slot: they
    // must not open connections (the task manager indices are about to change).
    for (const port of relays.values()) {
      port.removeAllListeners('message');
      port.close();
    }
    relays.clear();
    // Task manager indices change between deployments: reconnect lazily.
    for (const l of outbound.values()) l.then((x) => x.close()).catch(() => {});
    outbound.clear();
    await Promise.all(all.map((w) => w.terminate()));
  };

  /** Connects to a job manager, trying again with backoff; rejects on a refused token or the timeout. */
  const register = async (): Promise<{ link: Link; address: string }> => {
    const timeoutMs = options.registrationTimeoutMs;
    const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
    let delayMs = REGISTRATION_BACKOFF_MS.initial;
    let logged: { text: string; at: number } | undefined;
    // Handshakes a reachable job manager closed, in a row (see below).
    const closedHandshakes = new Map<string, number>();
    for (;;) {
      const failures: string[] = [];
      const candidates: string[] = [];
      if (options.findJobManager !== undefined)
        try {
          candidates.push(await options.findJobManager());
        } catch (e) {
          failures.push((e as Error).message);
        }
      for (const a of fixed) if (!candidates.includes(a)) candidates.push(a);
      for (const address of candidates) {
        try {
          const { host, port } = parseAddress(address);
          const link = await connectPeer(
            host,
            port,
            options.token,
            {
              role: 'taskmanager',
              slots: options.slots,
              dataHost: options.dataHost ?? '',
              dataPort,
            },
            wire,
          );
          return { link, address };
        } catch (e) {
          // NOTE: a wrong token stays wrong: retrying would only hide the mistake.
          if (refusedForGood(e)) throw e;
          // NOTE: a job manager that closes the handshake again and again (a TLS job manager
          // reached without TLS) is not one that is restarting: the third time is a mistake.
          const closed = /closed the connection during the handshake/.test((e as Error).message)
            ? (closedHandshakes.get(address) ?? 0) + 1
            : 0;
          closedHandshakes.set(address, closed);
          if (closed >= HANDSHAKES_CLOSED_FOR_GOOD) throw e;
          failures.push((e as Error).message);
        }
      }
      const text = failures.join('; ');
      if (Date.now() >= deadline)
        throw new WireError(`no job manager accepted this task manager within ${timeoutMs} ms (${text})`);
      const now = Date.now();
      if (logged === undefined || logged.text !== text || now - logged.at >= REGISTRATION_LOG_EVERY_MS) {
        log(`no job manager to register with yet (${text}); trying again`, 'warn');
        logged = { text, at: now };
      }
      await new Promise((r) =>
        setTimeout(r, Math.max(1, Math.min(delayMs * (0.8 + Math.random() * 0.4), deadline - now))),
      );
      delayMs = Math.min(delayMs * 2, REGISTRATION_BACKOFF_MS.max);
    }
  };

  /** Serves one job manager until its connection ends; says whether it ended the job (`shutdown`). */
  const serve = (jm: Link, address: string): Promise<{ shutdown?: string; lost?: string }> => {
    let lost: string | undefined;
    let shutdown: string | undefined;
    let watching = false;
    jm.on('error', (e: Error) => log(`connection with the job manager: ${e.message}`, 'warn'));
    // NOTE: the job manager's silence means it gave this task manager up, or is gone: the slots
    // stop rather than run on for an attempt that is over (Flink's task manager fails its tasks
    // when the job manager's heartbeats stop), and the task manager looks for a job manager again.
    jm.on('message', (m: ToTaskManager) => {
      switch (m.type) {
        case 'heartbeat':
          jm.send({ type: 'heartbeat' } satisfies FromTaskManager);
          if (!watching) {
            watching = true;
            watchSilence(jm, m.timeoutMs, (silentMs) => {
              lost = `lost the job manager at ${address}: nothing heard from it for ${silentMs} ms (heartbeat timeout ${m.timeoutMs} ms)`;
              jm.close();
            });
          }
          break;
        case 'deploy': {
          void undeploy().then(() => deploy(m));
          break;
        }
        case 'to-slot':
          workers.get(m.slot)?.post(m.message);
          break;
        case 'kill':
          void workers.get(m.slot)?.kill();
          break;
        case 'undeploy':
          void undeploy();
          break;
        case 'shutdown':
          shutdown = m.reason;
          jm.close();
          break;
      }
    });

    const deploy = (m: Extract<ToTaskManager, { type: 'deploy' }>) => {
      if (lost !== undefined || shutdown !== undefined) return;
      const me = m.owners[m.inits[0]?.slot ?? 0]!;
      const n = m.owners.length;
      const local = new Set(m.inits.map((i) => i.slot));
      const events: SlotEvents = {
        // NOTE: print lines stay on the task manager's standard output, as Flink's do (a
        // task manager's .out), summaries after the lines that came with them.
        message: (slot, message) =>
          message.type === 'stdout'
            ? writeStdoutLines([...message.lines, ...message.final])
            : jm.send({
                type: 'slot',
                deployment: m.deployment,
                slot,
                message:
                  message.type === 'metrics' ? { ...message, process: nodeMetrics.snapshot() } : message,
              } satisfies FromTaskManager),
        exit: (slot, reason) =>
          jm.send({ type: 'exit', deployment: m.deployment, slot, reason } satisfies FromTaskManager),
      };
      const ports = new Map<number, (MessagePort | undefined)[]>();
      for (const init of m.inits) ports.set(init.slot, new Array(n).fill(undefined));
      for (const a of local)
        for (let b = 0; b < n; b++) {
          if (a === b || ports.get(a)![b] !== undefined) continue;
          const { port1, port2 } = new MessageChannel();
          ports.get(a)![b] = port1;
          if (local.has(b)) ports.get(b)![a] = port2;
          else {
            // A remote peer: port2 relays between slot a and the task manager owning b.
            relays.set(`${b}>${a}`, port2);
            const owner = m.owners[b]!;
            port2.on('message', (message: SlotToSlot) => {
              let link = outbound.get(owner);
              if (link === undefined) {
                const peer = m.peers[owner]!;
                const connecting = connectPeer(
                  peer.host,
                  peer.port,
                  options.token,
                  { role: 'peer', from: me },
                  wire,
                );
                connecting.then(
                  (l) => {
                    l.on('error', (e: Error) => log(`data connection with ${l.peer}: ${e.message}`, 'warn'));
                    l.on('close', () => {
                      if (outbound.get(owner) === connecting) outbound.delete(owner);
                    });
                  },
                  () => {
                    if (outbound.get(owner) === connecting) outbound.delete(owner);
                  },
                );
                link = connecting;
                outbound.set(owner, link);
              }
              link.then(
                (l) => l.send({ deployment: m.deployment, from: a, to: b, message } satisfies PeerMessage),
                // Nothing may be dropped silently: the slot fails, and the job restarts or fails.
                (e: unknown) =>
                  events.exit(
                    a,
                    `cannot reach the task manager of slot ${b} at ${m.peers[owner]!.host}:${m.peers[owner]!.port}: ${(e as Error).message}`,
                  ),
              );
            });
          }
        }
      for (const init of m.inits) {
        const withPath = { ...init, jobPath: resolve(init.jobPath) };
        workers.set(init.slot, startWorker(withPath, ports.get(init.slot)!, events));
      }
      deployment = m.deployment;
      const waiting = early;
      early = [];
      for (const x of waiting) receive(x);
      log(`deployed slots ${[...local].join(', ')} of job module ${m.inits[0]?.jobPath ?? '?'}`);
    };

    return new Promise((res) =>
      jm.once('close', () =>
        res({
          ...(shutdown === undefined ? {} : { shutdown }),
          ...(lost === undefined ? {} : { lost }),
        }),
      ),
    );
  };

  try {
    for (;;) {
      const { link, address } = await register();
      log(`joined the job manager at ${address} with ${options.slots} slots (data port ${dataPort})`);
      const end = await serve(link, address);
      await undeploy();
      // NOTE: the next job manager numbers its deployments afresh (see TaskManagerPoolOptions):
      // what was held for a deployment to come of this one is void.
      deployment = 0;
      early = [];
      if (end.shutdown !== undefined) {
        log(`the job manager ended: ${end.shutdown}`);
        return;
      }
      log(
        `${end.lost ?? `the job manager at ${address} disconnected`}; stopping the slots and looking for the job manager again`,
        'warn',
      );
    }
  } finally {
    nodeMetrics.release();
    await undeploy();
    dataServer.close();
    // NOTE: the other task managers' connections are closed here too, not left to them: one behind
    // a cut link never closes its end, and an open connection would keep this process running.
    for (const l of inbound) l.close();
  }
}

/** A refusal that trying again cannot change: a wrong token, or not a tidemark peer. */
function refusedForGood(e: unknown): boolean {
  return (
    e instanceof WireError &&
    /authentication failed|failed to prove it knows the token|speaks .*, not |refused the connection: |does not speak TLS|TLS certificate/.test(
      e.message,
    )
  );
}
