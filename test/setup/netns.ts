/**
 * Several hosts on one machine, for tests that run as root: network namespaces (`ip netns`), one
 * per host, each with one veth link to a bridge, and the root namespace on the same bridge so
 * that servers a test starts (Redis) are reachable from every host and the test reaches them
 * too. A link can be cut and restored as a network fault would.
 *
 * NOTE: the bridge lives in a namespace of its own, whose netfilter tables are empty: a bridge in
 * the root namespace would pass through the host's firewall (br_netfilter), which Docker, for
 * one, sets to drop forwarded traffic.
 *
 * NOTE: every name carries the pid of the process that made it (`tm-<pid>-<hex>-<role>`). A run
 * that crashed leaves namespaces whose pid is gone: {@link createTestNetwork} deletes those (and
 * the processes in them) first; those of runs still alive are left alone.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const PREFIX = 'tm-';
const LEFTOVER = /^tm-(\d+)-[0-9a-f]+-/;

/** A host of a {@link TestNetwork}: its namespace and its address. */
export interface TestHost {
  /** The `ip netns` name. */
  netns: string;
  address: string;
}

/** Namespaces on one bridge; see the module comment. */
export interface TestNetwork {
  /** The root namespace's address on the network (bind servers the hosts must reach here). */
  hostAddress: string;
  /** The hosts, by role. */
  hosts: Record<string, TestHost>;
  /** `[command, args]` that run `command args` inside the host `role`. */
  exec(role: string, command: string, args: string[]): [string, string[]];
  /** Takes the link of host `role` down at the bridge: its packets are dropped, no error is seen. */
  cut(role: string): void;
  /** Brings the link of host `role` up again. */
  restore(role: string): void;
  /** Kills every process in the namespaces and deletes them (with their links). */
  destroy(): void;
}

/** The bridge's port of host `role` (interface names are at most 15 characters). */
function port(role: string): string {
  return `to-${role}`.slice(0, 15);
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why namespaces cannot be used here (not root, no CAP_NET_ADMIN, no `ip`), or undefined if they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  // Named as a leftover would be, so that a probe cut short is deleted by the next run.
  const probe = `${PREFIX}${process.pid}-0-probe`;
  for (const args of [
    ['netns', 'add', probe],
    ['netns', 'del', probe],
  ]) {
    try {
      ip(args);
    } catch (e) {
      const why = String((e as { stderr?: unknown }).stderr ?? (e as Error).message).trim();
      return `'ip ${args.join(' ')}' failed: ${why}`;
    }
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function namespaces(): string[] {
  return ip(['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n !== '');
}

function deleteNamespace(name: string): void {
  try {
    for (const pid of ip(['netns', 'pids', name]).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    ip(['netns', 'del', name]);
  } catch {
    // Already deleted (by a cleanup running at the same time).
  }
}

/** Deletes the namespaces of test runs whose process is gone (a crash, a killed run). */
export function deleteLeftovers(): void {
  for (const name of namespaces()) {
    const m = LEFTOVER.exec(name);
    if (m !== null && !alive(Number(m[1]))) deleteNamespace(name);
  }
}

/** A private /24 (`10.x.y`) that no route of the root namespace uses. */
function freeSubnet(): string {
  const routes = ip(['-4', 'route', 'show', 'table', 'all']);
  for (;;) {
    const net = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
    if (!routes.includes(`${net}.`)) return net;
  }
}

/**
 * Makes one namespace per role (addresses `.2`, `.3`, ... of a free `10.x.y.0/24`; the root
 * namespace is `.1`). Deletes leftovers of crashed runs first. Call `destroy()` in `afterAll`.
 */
export function createTestNetwork(roles: readonly string[]): TestNetwork {
  deleteLeftovers();
  const id = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const bridgeNs = `${PREFIX}${id}-net`;
  const net = freeSubnet();
  const hosts: Record<string, TestHost> = {};
  const made: string[] = [];
  // The root namespace's end: its only interface outside the namespaces.
  const rootEnd = `tmv${id.slice(-6)}`;
  const destroy = () => {
    // NOTE: deleted with its namespace's end too, but only once the kernel has cleaned that
    // namespace up (later): deleted here, nothing is left when `destroy` returns.
    try {
      ip(['link', 'del', 'dev', rootEnd]);
    } catch {
      // Not made, or already gone.
    }
    for (const name of made.reverse()) deleteNamespace(name);
    made.length = 0;
  };
  try {
    ip(['netns', 'add', bridgeNs]);
    made.push(bridgeNs);
    const inBridge = (args: string[]) => ip(['-n', bridgeNs, ...args]);
    inBridge(['link', 'add', 'name', 'br0', 'type', 'bridge']);
    inBridge(['link', 'set', 'dev', 'br0', 'up']);
    ip(['link', 'add', 'name', rootEnd, 'type', 'veth', 'peer', 'name', 'to-root', 'netns', bridgeNs]);
    ip(['addr', 'add', `${net}.1/24`, 'dev', rootEnd]);
    ip(['link', 'set', 'dev', rootEnd, 'up']);
    inBridge(['link', 'set', 'dev', 'to-root', 'master', 'br0', 'up']);
    roles.forEach((role, i) => {
      const netns = `${PREFIX}${id}-${role}`;
      ip(['netns', 'add', netns]);
      made.push(netns);
      const address = `${net}.${i + 2}`;
      inBridge(['link', 'add', 'name', port(role), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      inBridge(['link', 'set', 'dev', port(role), 'master', 'br0', 'up']);
      ip(['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ip(['-n', netns, 'link', 'set', 'dev', 'eth0', 'up']);
      ip(['-n', netns, 'link', 'set', 'dev', 'lo', 'up']);
      hosts[role] = { netns, address };
    });
  } catch (e) {
    destroy();
    throw e;
  }
  const host = (role: string) => {
    const h = hosts[role];
    if (h === undefined) throw new Error(`no host '${role}' in the test network`);
    return h;
  };
  return {
    hostAddress: `${net}.1`,
    hosts,
    exec: (role, command, args) => ['ip', ['netns', 'exec', host(role).netns, command, ...args]],
    cut: (role) => {
      host(role);
      ip(['-n', bridgeNs, 'link', 'set', 'dev', port(role), 'down']);
    },
    restore: (role) => {
      host(role);
      ip(['-n', bridgeNs, 'link', 'set', 'dev', port(role), 'up']);
    },
    destroy,
  };
}
