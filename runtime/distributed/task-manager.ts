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
import type { Server } from 'node:net';
import { relative, resolve } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { TidemarkError } from '../../state/errors.js';
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
  log?: (line: string) => void;
}

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
  private deployments = 0;
  private constructor(
    private readonly server: Server,
    private readonly managers: Registered[],
  ) {}

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
      link.on('error', (e: Error) => log(`connection from ${link.peer}: ${e.message}`));
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
        log(`${m.name} ${m.lost}; giving it up`);
        link.close();
      });
      link.once('close', () => {
        clearInterval(beat);
        m.alive = false;
        log(`${m.name} left`);
      });
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
      server.close();
      for (const m of managers) m.link.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return new TaskManagerPool(server, managers);
  }

  /** The port actually listened on. */
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  start(inits: SlotInit[], events: SlotEvents): SlotHandle[] {
    const live = this.live();
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

  /** Disconnects the task managers (they exit) and stops listening. */
  close(): void {
    for (const m of this.managers) m.link.close();
    this.server.close();
  }
}

/** Options of a task manager process. */
export interface TaskManagerOptions {
  /** The job manager's `host:port`. */
  jobManager: string;
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
  log?: (line: string) => void;
}

/**
 * Runs a task manager until the job manager disconnects. Rejects, after stopping its slots, when
 * the job manager's heartbeats stop (the job manager restarts the job without this task manager).
 */
export async function runTaskManager(options: TaskManagerOptions): Promise<void> {
  const log = options.log ?? (() => {});
  const { host, port } = parseAddress(options.jobManager);
  checkAuthentication(options.token, options.tls);
  const wire = {
    tls: options.tls,
    frameTimeoutMs: options.frameTimeoutMs,
    refusalLogIntervalMs: options.refusalLogIntervalMs,
    log: (line: string) => log(`data connection: ${line}`),
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
      link.on('error', (e: Error) => log(`data connection from ${link.peer}: ${e.message}`));
      link.on('message', receive);
    },
  );
  const dataPort = (dataServer.address() as { port: number }).port;
  let jm: Link;
  try {
    jm = await connectPeer(
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
  } catch (e) {
    dataServer.close();
    throw e;
  }
  jm.on('error', (e: Error) => log(`connection with the job manager: ${e.message}`));
  log(`joined the job manager at ${options.jobManager} with ${options.slots} slots (data port ${dataPort})`);

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

  // NOTE: the job manager's silence means it gave this task manager up, or is gone: the slots
  // stop rather than run on for an attempt that is over (Flink's task manager fails its tasks
  // when the job manager's heartbeats stop). Rejoining is for a supervisor that restarts it.
  let lost: string | undefined;
  let watching = false;
  jm.on('message', (m: ToTaskManager) => {
    switch (m.type) {
      case 'heartbeat':
        jm.send({ type: 'heartbeat' } satisfies FromTaskManager);
        if (!watching) {
          watching = true;
          watchSilence(jm, m.timeoutMs, (silentMs) => {
            lost = `lost the job manager at ${options.jobManager}: nothing heard from it for ${silentMs} ms (heartbeat timeout ${m.timeoutMs} ms)`;
            log(`${lost}; stopping the slots`);
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
    }
  });

  const deploy = (m: Extract<ToTaskManager, { type: 'deploy' }>) => {
    const me = m.owners[m.inits[0]?.slot ?? 0]!;
    const n = m.owners.length;
    const local = new Set(m.inits.map((i) => i.slot));
    const events: SlotEvents = {
      message: (slot, message) =>
        jm.send({ type: 'slot', deployment: m.deployment, slot, message } satisfies FromTaskManager),
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
                  l.on('error', (e: Error) => log(`data connection with ${l.peer}: ${e.message}`));
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

  await new Promise<void>((res) => jm.on('close', () => res()));
  await undeploy();
  dataServer.close();
  // NOTE: the other task managers' connections are closed here too, not left to them: one behind
  // a cut link never closes its end, and an open connection would keep this process running.
  for (const l of inbound) l.close();
  for (const l of outbound.values()) void l.then((x) => x.close()).catch(() => {});
  if (lost !== undefined) throw new WireError(lost);
  log('the job manager disconnected');
}
