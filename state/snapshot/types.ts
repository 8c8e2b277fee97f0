/**
 * What a snapshot of an operator subtask is made of, from the smallest part to the whole. One set
 * of types, from the state backend and timers up to the checkpoint and back to a restore:
 *
 * - {@link TableSnapshot}: one keyed state (a table) in one key group;
 * - {@link TimersSnapshot}: one timer service's timers in one key group;
 * - {@link KeyGroupSnapshot}: everything of one key group of one operator (tables and timers), the
 *   unit that checkpoints write, reuse and redistribute;
 * - {@link OperatorStateSnapshot}: the operator (non-keyed) state of one subtask;
 * - {@link OperatorSubtaskState}: the whole state of one operator subtask, decoded: what a
 *   harness snapshot gives, what a checkpoint restores, and what a subtask starts from;
 * - {@link IncrementalSnapshot}: the synchronous part of a checkpoint of one operator subtask,
 *   encoded, holding only the key groups that changed.
 *
 * Their encodings are in `key-group-codec.ts` (a key group) and `format.ts` (everything else,
 * and the checkpoint metadata).
 */
import type { StateKind } from '../descriptors.js';
import type { MapKey } from '../key-codec.js';

/** The data of one state in one key group. */
export interface TableSnapshot {
  kind: StateKind;
  namespaced: boolean;
  /**
   * Flat, as it is cheapest to encode: `[key, value, key, value, ...]` or, for namespaced tables,
   * `[key, n, namespace1, value1, ..., namespaceN, valueN, key, ...]` (canonical keys).
   */
  data: unknown[];
}

/** The timers of one timer service in one key group: `[key, namespace, timestamp, ...]` per domain. */
export interface TimersSnapshot {
  event: unknown[];
  processing: unknown[];
}

/** Everything of one key group of one operator: its state tables and its timers, by name. */
export interface KeyGroupSnapshot {
  state: Record<string, TableSnapshot>;
  timers: Record<string, TimersSnapshot>;
  /**
   * Set on a delta (an incremental snapshot of some keys): the keys (canonical forms) whose state
   * and timers this replaces in the key group's previous snapshot. Absent: the whole key group.
   */
  replaces?: MapKey[];
}

/** How a list of operator state is redistributed when the parallelism changes. */
export type RedistributionMode = 'split' | 'union' | 'broadcast';

/** One subtask's operator state: list name → mode and items. */
export type OperatorStateSnapshot = Record<string, { mode: RedistributionMode; items: unknown[] }>;

/**
 * The state of one operator subtask: its operator state and, for a keyed operator, its key groups
 * (only those that hold something). A subtask restored at another parallelism starts from one of
 * these too, made of the key groups it now owns and its share of the operator state.
 */
export interface OperatorSubtaskState {
  operatorId: string;
  subtaskIndex: number;
  parallelism: number;
  maxParallelism: number;
  /** Keyed operators only. */
  keyGroups?: Map<number, KeyGroupSnapshot>;
  operatorState: OperatorStateSnapshot;
  /**
   * The operator had finished in every subtask (and so had every operator upstream of it): the
   * subtask starts finished, reading nothing and running nothing (Flink's finished-on-restore
   * operators, FLIP-147).
   */
  finished?: boolean;
  /**
   * The checkpoint this state was restored from, when the coming checkpoints refer to its chunks
   * for the key groups left as restored (the checkpoint coordinator starts from it as its
   * incremental base): a key group not installed yet is then not written again (see
   * `OperatorRuntime.deferRestore`). Unset, every restored key group is written by the first
   * checkpoint.
   */
  sharedBase?: number;
}

/**
 * The synchronous part of one operator subtask's checkpoint: its operator state and the key groups
 * that changed since its previous snapshot, encoded (the encoding is the copy, so later changes
 * cannot leak in); the checkpoint writes them while processing goes on.
 */
export interface IncrementalSnapshot {
  operatorId: string;
  subtaskIndex: number;
  parallelism: number;
  maxParallelism: number;
  keyed: boolean;
  watermark: number;
  /** Encoded {@link OperatorStateSnapshot}. */
  operatorState: Uint8Array;
  /** Key groups changed since the previous snapshot: encoded {@link KeyGroupSnapshot}s. */
  changed: Map<number, Uint8Array>;
  /**
   * The key groups of `changed` that are deltas, each with the checkpoint whose snapshot of the
   * group it applies to (the last one that wrote the group): `[keyGroup, checkpointId]`.
   */
  deltas: [number, number][];
  /** The key groups this subtask owns, `[start, end]` (empty when end < start). */
  keyGroupStart: number;
  keyGroupEnd: number;
  /** Taken after the subtask finished (its end state): it reads nothing more. */
  finished?: boolean;
  /**
   * Set when some of `changed` is still being read (whole key groups of the LMDB backend, read
   * from a read transaction after the synchronous part): `changed` is complete once it resolves.
   * The task awaits it, and removes it, before it acknowledges the checkpoint.
   */
  pending?: Promise<void>;
  /** With `pending`: the key groups it adds to `changed`. */
  pendingKeyGroups?: number[];
}

/** Deltas on a key group before it is written whole again (bounds the work of a restore). */
export const MAX_DELTAS_PER_KEY_GROUP = 8;
