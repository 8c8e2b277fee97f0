/**
 * The plain description of a job that the stream API builds: a DAG of transformations. Physical
 * transformations become operators; `union`, `partition` and `side-output` are virtual and become
 * edge properties when the runtime builds the job graph.
 */
import type { Key } from '../state/hash.js';
import type { KeySelector } from './functions.js';
import type { AbstractStreamOperator } from './operator.js';
import type { OutputTag } from './output-tag.js';
import type { Source } from './sources/source.js';

/** How records are distributed from the subtasks of one operator to those of the next. */
export type PartitionerSpec =
  | { readonly kind: 'forward' }
  | { readonly kind: 'rebalance' }
  | { readonly kind: 'rescale' }
  | { readonly kind: 'broadcast' }
  | { readonly kind: 'shuffle' }
  | { readonly kind: 'global' }
  | { readonly kind: 'hash'; readonly keySelector: KeySelector<unknown, Key> };

/** Whether an operator may be chained with its neighbours. */
export type ChainingStrategy = 'always' | 'head' | 'never';

/** Creates a fresh operator instance for one subtask. */
export type OperatorFactory = () => AbstractStreamOperator<unknown>;

interface Common {
  /** Creation index within the environment: stable for the same job module. */
  readonly id: number;
  /** What made it (map, filter, reduce, ...), used for default names and ids. */
  readonly kind: string;
  name: string;
  uid: string | undefined;
  parallelism: number | undefined;
  maxParallelism: number | undefined;
  chaining: ChainingStrategy;
}

/** A source. */
export interface SourceTransformation extends Common {
  readonly type: 'source';
  readonly source: Source<unknown>;
  /** The source operator (it wraps the source with timestamps and watermarks). */
  readonly factory: OperatorFactory;
}

/** An operator with one or two inputs (a sink is an operator without consumers). */
export interface OperatorTransformation extends Common {
  readonly type: 'operator';
  readonly inputs: readonly Transformation[];
  readonly factory: OperatorFactory;
  /** Key selector per input for keyed operators (`undefined` entries: non-keyed input). */
  readonly keySelectors: readonly (KeySelector<unknown, Key> | undefined)[];
  /** True if the operator only makes sense on keyed input (keyed state, timers). */
  readonly requiresKeyed: boolean;
  readonly isSink: boolean;
  /** A sink whose results the client collects (collect(), summaries). */
  readonly resultId?: string;
  /**
   * Runs at the parallelism of its input (the largest, if several) unless one is set: an operator
   * that belongs with its input, such as the local half of a pre-aggregated window.
   */
  readonly parallelismOfInput?: boolean;
  /**
   * Its id, unless a uid is set, is the id of `transformation` followed by `suffix`: an operator
   * that the API adds for another one (the local half of a pre-aggregated window) follows that
   * operator's uid.
   */
  idOf?: { readonly transformation: Transformation; readonly suffix: string };
}

/** The union of several streams of the same type. */
export interface UnionTransformation extends Common {
  readonly type: 'union';
  readonly inputs: readonly Transformation[];
}

/** A change of partitioning (keyBy, rebalance, broadcast, ...). */
export interface PartitionTransformation extends Common {
  readonly type: 'partition';
  readonly inputs: readonly [Transformation];
  readonly partitioner: PartitionerSpec;
}

/** The records a producer sent to a side output. */
export interface SideOutputTransformation extends Common {
  readonly type: 'side-output';
  readonly inputs: readonly [Transformation];
  readonly tag: OutputTag<unknown>;
}

/** Any node of the description. */
export type Transformation =
  | SourceTransformation
  | OperatorTransformation
  | UnionTransformation
  | PartitionTransformation
  | SideOutputTransformation;

/** A transformation that becomes an operator. */
export type PhysicalTransformation = SourceTransformation | OperatorTransformation;

/** True for transformations that become operators. */
export function isPhysical(t: Transformation): t is PhysicalTransformation {
  return t.type === 'source' || t.type === 'operator';
}

/**
 * The stable operator id: the uid if given, else the id of the operator it was added for (see
 * `idOf`), else derived from the creation index and kind.
 */
export function operatorIdOf(t: Transformation): string {
  if (t.uid !== undefined) return t.uid;
  if (t.type === 'operator' && t.idOf !== undefined)
    return `${operatorIdOf(t.idOf.transformation)}${t.idOf.suffix}`;
  return `${t.id}-${t.kind}`;
}
