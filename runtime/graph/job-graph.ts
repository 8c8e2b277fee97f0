/**
 * From the stream API's transformations to the job graph: physical operators (stream nodes), the
 * edges between them (with partitioning and side outputs resolved from the virtual nodes), and
 * chains of operators (job vertices) that run together in one subtask.
 */
import type { StreamEnvironment } from '../../operators/environment.js';
import type { OutputTag } from '../../operators/output-tag.js';
import {
  type ChainingStrategy,
  isPhysical,
  type OperatorTransformation,
  operatorIdOf,
  type PartitionerSpec,
  type PhysicalTransformation,
  type Transformation,
} from '../../operators/transformation.js';
import { InvalidGraphError } from '../../state/errors.js';
import { defaultMaxParallelism } from '../../state/key-groups.js';
import { type StateBackendConfig, stateBackendFromEnv } from '../../state/state-backends.js';

/** One operator of the job, with its resolved parallelism. */
export interface StreamNode {
  readonly id: number;
  /** Stable id: the uid, or derived from the graph. */
  readonly operatorId: string;
  readonly name: string;
  readonly kind: string;
  readonly parallelism: number;
  readonly maxParallelism: number;
  readonly chaining: ChainingStrategy;
  readonly transformation: PhysicalTransformation;
  readonly isSource: boolean;
  readonly isSink: boolean;
  /** True if the operator keeps keyed state (its input is partitioned by key). */
  readonly keyed: boolean;
  /** Keyed operators: the state backend of the job (undefined: the heap). */
  readonly stateBackend: StateBackendConfig | undefined;
  readonly inEdges: StreamEdge[];
  readonly outEdges: StreamEdge[];
}

/** A connection between two operators. */
export interface StreamEdge {
  readonly id: number;
  readonly source: StreamNode;
  readonly target: StreamNode;
  readonly partitioner: PartitionerSpec;
  /** Set when the edge carries a side output of the source. */
  readonly sideOutput: OutputTag<unknown> | undefined;
  /** Which input of the target (1, or 2 for the second input of a two-input operator). */
  readonly inputIndex: 1 | 2;
  /** True if source and target run in the same chain (direct calls). */
  chained: boolean;
}

/** A chain of operators that run together in each subtask (Flink's JobVertex). */
export interface JobVertex {
  readonly id: number;
  readonly name: string;
  readonly parallelism: number;
  readonly maxParallelism: number;
  /** The chain's operators, head first, in topological order. */
  readonly nodes: StreamNode[];
  readonly head: StreamNode;
  /** Network edges into the head. */
  readonly inputs: StreamEdge[];
  /** Network edges out of any operator of the chain. */
  readonly outputs: StreamEdge[];
}

/** The whole job, ready to be scheduled. */
export interface JobGraph {
  readonly jobName: string;
  readonly nodes: StreamNode[];
  readonly edges: StreamEdge[];
  /** In topological order. */
  readonly vertices: JobVertex[];
  /** Channel capacity (records) between subtasks. */
  readonly bufferCapacity: number;
  /** The keyed-state backend of the job's keyed operators (undefined: the heap). */
  readonly stateBackend: StateBackendConfig | undefined;
}

/** Options that override the environment when building the graph. */
export interface JobGraphOptions {
  parallelism?: number;
  maxParallelism?: number;
  /** The keyed-state backend (default: the environment's, else TIDEMARK_STATE_BACKEND's, else the heap). */
  stateBackend?: StateBackendConfig | undefined;
}

interface Resolved {
  node: PhysicalTransformation;
  partitioner: PartitionerSpec | undefined;
  sideOutput: OutputTag<unknown> | undefined;
}

/** Builds and validates the job graph of an environment. */
export function buildJobGraph(env: StreamEnvironment, options: JobGraphOptions = {}): JobGraph {
  const jobName = env.config.jobName;
  const defaultParallelism = options.parallelism ?? env.config.parallelism;
  const envMaxParallelism = options.maxParallelism ?? env.config.maxParallelism;
  const stateBackend = options.stateBackend ?? env.config.stateBackend ?? stateBackendFromEnv();
  const fail = (msg: string, operator?: PhysicalTransformation): never => {
    throw new InvalidGraphError(`job '${jobName}': ${msg}`, {
      jobName,
      ...(operator === undefined ? {} : { operatorId: operatorIdOf(operator), operatorName: operator.name }),
    });
  };
  const label = (t: PhysicalTransformation) => `'${t.name}' (${operatorIdOf(t)})`;

  checkAcyclic(env.transformations, fail);

  // Operators reachable backwards from sinks (as Flink, operators that feed no sink do not run).
  const sinks = env.transformations.filter((t) => t.type === 'operator' && t.isSink);
  if (sinks.length === 0)
    fail('it has no sinks, so nothing would run; add a sink such as print() or collect()');
  const reachable = new Set<Transformation>();
  const stack: Transformation[] = [...sinks];
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (reachable.has(t)) continue;
    reachable.add(t);
    if (t.type !== 'source') stack.push(...t.inputs);
  }
  const physical = env.transformations.filter(
    (t): t is PhysicalTransformation => isPhysical(t) && reachable.has(t),
  );

  // Unique ids.
  const byId = new Map<string, PhysicalTransformation>();
  for (const t of physical) {
    const id = operatorIdOf(t);
    const other = byId.get(id);
    if (other !== undefined)
      fail(`duplicate uid '${id}' on operators '${other.name}' and '${t.name}'; every uid must be unique`, t);
    byId.set(id, t);
  }

  // Nodes with resolved parallelism.
  const nodes = new Map<PhysicalTransformation, StreamNode>();
  for (const t of physical) {
    const isSource = t.type === 'source';
    const sourceMax = isSource ? t.source.maxParallelism : undefined;
    const parallelism =
      t.parallelism ??
      (sourceMax === 1
        ? 1
        : t.type === 'operator' && t.parallelismOfInput === true
          ? inputParallelism(t, nodes, defaultParallelism)
          : defaultParallelism);
    if (sourceMax !== undefined && parallelism > sourceMax)
      fail(`operator ${label(t)} is a non-parallel source: its parallelism must be 1, got ${parallelism}`, t);
    const maxParallelism =
      (isSource ? undefined : t.maxParallelism) ?? envMaxParallelism ?? defaultMaxParallelism(parallelism);
    if (parallelism > maxParallelism)
      fail(
        `operator ${label(t)} has parallelism ${parallelism}, which is greater than its maxParallelism ${maxParallelism}`,
        t,
      );
    nodes.set(t, {
      id: t.id,
      operatorId: operatorIdOf(t),
      name: t.name,
      kind: t.kind,
      parallelism,
      maxParallelism,
      chaining: t.chaining,
      transformation: t,
      isSource,
      isSink: t.type === 'operator' && t.isSink,
      keyed: t.type === 'operator' && t.keySelectors.some((k) => k !== undefined),
      stateBackend,
      inEdges: [],
      outEdges: [],
    });
  }

  // Edges, resolving unions, partitionings and side outputs.
  const edges: StreamEdge[] = [];
  for (const t of physical) {
    if (t.type !== 'operator') continue;
    const target = nodes.get(t)!;
    t.inputs.forEach((input, i) => {
      const inputIndex = (i === 0 ? 1 : 2) as 1 | 2;
      for (const r of resolve(input, undefined, undefined)) {
        const source = nodes.get(r.node)!;
        const partitioner: PartitionerSpec =
          r.partitioner ??
          (source.parallelism === target.parallelism ? { kind: 'forward' } : { kind: 'rebalance' });
        if (partitioner.kind === 'forward' && source.parallelism !== target.parallelism)
          fail(
            `forward partitioning from ${label(source.transformation)} (parallelism ${source.parallelism}) to ${label(t)} (parallelism ${target.parallelism}) needs equal parallelism; use rebalance() or rescale()`,
            t,
          );
        const edge: StreamEdge = {
          id: edges.length + 1,
          source,
          target,
          partitioner,
          sideOutput: r.sideOutput,
          inputIndex,
          chained: false,
        };
        edges.push(edge);
        source.outEdges.push(edge);
        target.inEdges.push(edge);
      }
    });
    // Keyed operators need a keyed input, partitioned by key (a broadcast input may join them).
    const keyedMessage = `operator ${label(t)} is a keyed operation (keyed state or timers) on a non-keyed stream; call keyBy() before it`;
    if (t.requiresKeyed && !target.keyed) fail(keyedMessage, t);
    for (const e of target.inEdges)
      if (t.keySelectors[e.inputIndex - 1] !== undefined && e.partitioner.kind !== 'hash')
        fail(keyedMessage, t);
  }

  // Chains.
  for (const e of edges) e.chained = isChainable(e);
  const vertices = buildVertices([...nodes.values()], edges);
  return {
    jobName,
    nodes: [...nodes.values()],
    edges,
    vertices,
    bufferCapacity: env.config.bufferCapacity,
    stateBackend,
  };
}

/** The largest parallelism of an operator's (already resolved) inputs. */
function inputParallelism(
  t: OperatorTransformation,
  nodes: ReadonlyMap<PhysicalTransformation, StreamNode>,
  fallback: number,
): number {
  let p = 0;
  for (const input of t.inputs)
    for (const r of resolve(input, undefined, undefined))
      p = Math.max(p, nodes.get(r.node)?.parallelism ?? 0);
  return p === 0 ? fallback : p;
}

function resolve(
  t: Transformation,
  partitioner: PartitionerSpec | undefined,
  side: OutputTag<unknown> | undefined,
): Resolved[] {
  switch (t.type) {
    case 'source':
    case 'operator':
      return [{ node: t, partitioner, sideOutput: side }];
    case 'partition':
      // The partitioning closest to the consumer wins.
      return resolve(t.inputs[0], partitioner ?? t.partitioner, side);
    case 'union':
      return t.inputs.flatMap((i) => resolve(i, partitioner, side));
    case 'side-output':
      return resolve(t.inputs[0], partitioner, t.tag);
  }
}

function isChainable(e: StreamEdge): boolean {
  const { source, target } = e;
  return (
    target.inEdges.length === 1 &&
    e.partitioner.kind === 'forward' &&
    source.parallelism === target.parallelism &&
    target.chaining === 'always' &&
    source.chaining !== 'never' &&
    !target.isSource
  );
}

function buildVertices(nodes: StreamNode[], edges: StreamEdge[]): JobVertex[] {
  const heads = nodes.filter((n) => !n.inEdges.some((e) => e.chained));
  const vertexOf = new Map<StreamNode, JobVertex>();
  const vertices: JobVertex[] = [];
  for (const head of heads) {
    const chain: StreamNode[] = [];
    const visit = (n: StreamNode) => {
      chain.push(n);
      for (const e of n.outEdges) if (e.chained) visit(e.target);
    };
    visit(head);
    const v: JobVertex = {
      id: 0,
      name: chain.map((n) => (n.isSource ? `Source: ${n.name}` : n.name)).join(' -> '),
      parallelism: head.parallelism,
      maxParallelism: Math.max(...chain.map((n) => n.maxParallelism)),
      nodes: chain,
      head,
      inputs: head.inEdges.filter((e) => !e.chained),
      outputs: chain.flatMap((n) => n.outEdges.filter((e) => !e.chained)),
    };
    for (const n of chain) vertexOf.set(n, v);
    vertices.push(v);
  }
  // Topological order of vertices (Kahn), ties by head id for stable output.
  const indegree = new Map<JobVertex, number>(vertices.map((v) => [v, 0]));
  for (const e of edges)
    if (!e.chained) indegree.set(vertexOf.get(e.target)!, indegree.get(vertexOf.get(e.target)!)! + 1);
  const ready = vertices.filter((v) => indegree.get(v) === 0).sort((a, b) => a.head.id - b.head.id);
  const ordered: JobVertex[] = [];
  while (ready.length > 0) {
    const v = ready.shift()!;
    ordered.push(v);
    for (const e of v.outputs) {
      const t = vertexOf.get(e.target)!;
      const d = indegree.get(t)! - 1;
      indegree.set(t, d);
      if (d === 0) {
        ready.push(t);
        ready.sort((a, b) => a.head.id - b.head.id);
      }
    }
  }
  ordered.forEach((v, i) => {
    (v as { id: number }).id = i + 1;
  });
  return ordered;
}

/** Throws if the transformations contain a cycle (only possible by editing the description). */
export function checkAcyclic(transformations: readonly Transformation[], fail: (msg: string) => never): void {
  const state = new Map<Transformation, 1 | 2>();
  const path: Transformation[] = [];
  const visit = (t: Transformation): void => {
    const s = state.get(t);
    if (s === 2) return;
    if (s === 1) {
      const cycle = [...path.slice(path.indexOf(t)), t].map((x) => `'${x.name}'`).join(' -> ');
      fail(`the graph has a cycle: ${cycle}`);
    }
    state.set(t, 1);
    path.push(t);
    if (t.type !== 'source') for (const i of t.inputs) visit(i);
    path.pop();
    state.set(t, 2);
  };
  for (const t of transformations) visit(t);
}
