/** Prints a job graph as text, Graphviz dot, or JSON (`tidemark plan`). */
import type { PartitionerSpec } from '../../operators/transformation.js';
import type { JobGraph, JobVertex, StreamEdge } from './job-graph.js';
import { placeSubtasks, type SlotPlacement } from './placement.js';

/** Output formats of {@link formatPlan}. */
export type PlanFormat = 'text' | 'dot' | 'json';

/** The plan as a JSON-friendly object. */
export interface PlanJson {
  jobName: string;
  vertices: {
    id: number;
    name: string;
    parallelism: number;
    maxParallelism: number;
    subtasks: string[];
    operators: {
      id: string;
      name: string;
      kind: string;
      parallelism: number;
      keyed: boolean;
      source: boolean;
      sink: boolean;
    }[];
    inputs: {
      fromVertex: number;
      fromOperator: string;
      toOperator: string;
      partitioning: string;
      sideOutput?: string;
      input: number;
    }[];
  }[];
  chainedEdges: { from: string; to: string; sideOutput?: string }[];
}

function partitioning(p: PartitionerSpec): string {
  return p.kind === 'hash' ? 'hash (keyBy)' : p.kind;
}

/** The plan as plain data. */
export function planToJson(graph: JobGraph): PlanJson {
  const vertexOf = new Map<string, JobVertex>();
  for (const v of graph.vertices) for (const n of v.nodes) vertexOf.set(n.operatorId, v);
  return {
    jobName: graph.jobName,
    vertices: graph.vertices.map((v) => ({
      id: v.id,
      name: v.name,
      parallelism: v.parallelism,
      maxParallelism: v.maxParallelism,
      subtasks: Array.from({ length: v.parallelism }, (_x, i) => `${v.name} (${i + 1}/${v.parallelism})`),
      operators: v.nodes.map((n) => ({
        id: n.operatorId,
        name: n.name,
        kind: n.kind,
        parallelism: n.parallelism,
        keyed: n.keyed,
        source: n.isSource,
        sink: n.isSink,
      })),
      inputs: v.inputs.map((e) => ({
        fromVertex: vertexOf.get(e.source.operatorId)!.id,
        fromOperator: e.source.operatorId,
        toOperator: e.target.operatorId,
        partitioning: partitioning(e.partitioner),
        ...(e.sideOutput === undefined ? {} : { sideOutput: e.sideOutput.id }),
        input: e.inputIndex,
      })),
    })),
    chainedEdges: graph.edges
      .filter((e) => e.chained)
      .map((e) => ({
        from: e.source.operatorId,
        to: e.target.operatorId,
        ...(e.sideOutput === undefined ? {} : { sideOutput: e.sideOutput.id }),
      })),
  };
}

/** The plan as readable text. */
export function planToText(graph: JobGraph): string {
  const json = planToJson(graph);
  const subtasks = graph.vertices.reduce((n, v) => n + v.parallelism, 0);
  const lines = [
    `job '${graph.jobName}': ${graph.vertices.length} vertices (chains), ${graph.nodes.length} operators, ${subtasks} subtasks`,
  ];
  for (const v of json.vertices) {
    lines.push('');
    lines.push(`vertex ${v.id}: ${v.name}`);
    lines.push(
      `  parallelism ${v.parallelism} (subtasks ${v.parallelism === 1 ? '0' : `0..${v.parallelism - 1}`}), maxParallelism ${v.maxParallelism}`,
    );
    lines.push(
      `  chain: ${v.operators.map((o) => `${o.name} [${o.id}]${o.keyed ? ' keyed' : ''}`).join(' -> ')}`,
    );
    for (const i of v.inputs)
      lines.push(
        `  input ${i.input}: from vertex ${i.fromVertex} (${i.fromOperator} -> ${i.toOperator}) by ${i.partitioning}${i.sideOutput === undefined ? '' : `, side output '${i.sideOutput}'`}`,
      );
  }
  return lines.join('\n');
}

function dotId(s: string): string {
  return JSON.stringify(s);
}

function edgeLabel(e: StreamEdge): string {
  return `${e.chained ? 'chained' : partitioning(e.partitioner)}${e.sideOutput === undefined ? '' : ` [${e.sideOutput.id}]`}`;
}

/** The plan as a Graphviz digraph: one cluster per chain, one node per operator. */
export function planToDot(graph: JobGraph, placement?: PlacementJson): string {
  const lines = [
    `digraph ${dotId(graph.jobName)} {`,
    '  rankdir=LR;',
    '  node [shape=box, fontname="Helvetica"];',
  ];
  for (const v of graph.vertices) {
    lines.push(`  subgraph ${dotId(`cluster_${v.id}`)} {`);
    lines.push(`    label=${dotId(`vertex ${v.id} (parallelism ${v.parallelism})`)};`);
    for (const n of v.nodes)
      lines.push(`    ${dotId(n.operatorId)} [label=${dotId(`${n.name}\n${n.operatorId}`)}];`);
    lines.push('  }');
  }
  if (placement !== undefined)
    lines.push(`  label=${dotId(placement.bySlot.map((s, i) => `slot ${i}: ${s.join(', ')}`).join('\n'))};`);
  for (const e of graph.edges)
    lines.push(
      `  ${dotId(e.source.operatorId)} -> ${dotId(e.target.operatorId)} [label=${dotId(edgeLabel(e))}${e.chained ? ', style=dashed' : ''}];`,
    );
  lines.push('}');
  return lines.join('\n');
}

/** Which slot runs which subtasks, as plain data. */
export interface PlacementJson {
  slots: number;
  /** Per slot: the subtasks it runs (`vertex name (i/p)`). */
  bySlot: string[][];
}

/** The placement of the plan's subtasks on slots. */
export function placementToJson(graph: JobGraph, placement: SlotPlacement): PlacementJson {
  const bySlot: string[][] = Array.from({ length: placement.slots }, () => []);
  for (const v of graph.vertices)
    for (let i = 0; i < v.parallelism; i++)
      bySlot[placement.slotOf(v.id, i)]!.push(`${v.name} (${i + 1}/${v.parallelism})`);
  return { slots: placement.slots, bySlot };
}

/** Options of {@link formatPlan}. */
export interface PlanOptions {
  /** Show which slot runs what when the job is given this many slots. */
  slots?: number;
}

/** The plan in one of the formats. */
export function formatPlan(graph: JobGraph, format: PlanFormat, options: PlanOptions = {}): string {
  const placement =
    options.slots === undefined ? undefined : placementToJson(graph, placeSubtasks(graph, options.slots));
  if (format === 'json')
    return JSON.stringify(
      { ...planToJson(graph), ...(placement === undefined ? {} : { placement }) },
      null,
      2,
    );
  if (format === 'dot') return planToDot(graph, placement);
  const text = planToText(graph);
  if (placement === undefined) return text;
  const lines = [
    text,
    '',
    `on ${options.slots} slot(s): ${placement.slots} used (as many as the highest parallelism), subtask i of every vertex in slot i mod ${placement.slots}`,
  ];
  placement.bySlot.forEach((subtasks, slot) => {
    lines.push(`  slot ${slot}: ${subtasks.join(', ')}`);
  });
  return lines.join('\n');
}
