/**
 * The `tidemark` package entry: the stream API, state descriptors, jobs and execution.
 * Everything exported here is public API; nothing else is.
 */
export * from '../operators/index.js';
export type {
  AggregatingState,
  ListState,
  MapState,
  ReducingState,
  StateDescriptorOptions,
  StateTtlConfig,
  TtlStateVisibility,
  TtlUpdateType,
  ValueState,
} from '../state/descriptors.js';
export {
  AggregatingStateDescriptor,
  ListStateDescriptor,
  MapStateDescriptor,
  ReducingStateDescriptor,
  ValueStateDescriptor,
} from '../state/descriptors.js';
export type { ErrorClass, ErrorCode, ErrorContext } from '../state/errors.js';
export {
  InvalidArgumentError,
  InvalidGraphError,
  InvalidRecordError,
  JobCancelledError,
  JobFailedError,
  registerErrorClass,
  StateError,
  TidemarkError,
  UserFunctionError,
} from '../state/errors.js';
export type { AggregateFunction, ReduceFunction } from '../state/functions.js';
export type { Key } from '../state/hash.js';
export { KeyGroupMismatchError } from '../state/heap-backend.js';
export { KeyGroupRange, keyGroupFor, subtaskForKey, subtaskForKeyGroup } from '../state/key-groups.js';
export { IncompatibleCheckpointError } from '../state/snapshot-format.js';
export type {
  CheckpointInfo,
  CheckpointStorage,
  CommitOptions,
} from '../state/storage/checkpoint-storage.js';
export {
  CheckpointNotFoundError,
  CommitOutcomeUnknownError,
  CorruptChunkError,
  FencedError,
  StaleCheckpointError,
  StorageError,
} from '../state/storage/checkpoint-storage.js';
export type { FileCheckpointStorageOptions } from '../state/storage/file.js';
export { FileCheckpointStorage } from '../state/storage/file.js';
export type { MemoryCheckpointStorageOptions } from '../state/storage/memory.js';
export { MemoryCheckpointStorage } from '../state/storage/memory.js';
export type { OpenCheckpointStorageOptions } from '../state/storage/open-storage.js';
export { openCheckpointStorage } from '../state/storage/open-storage.js';
export type { RedisCheckpointStorageOptions } from '../state/storage/redis.js';
export { RedisCheckpointStorage } from '../state/storage/redis.js';
export type { CheckpointingOptions, CheckpointStats } from './checkpoint/coordinator.js';
export { ManualClock, SystemClock } from './clock.js';
export type { CheckpointConfig, ExecuteOptions, JobClient } from './environment.js';
export { StreamExecutionEnvironment } from './environment.js';
export type { JobGraph, JobVertex, StreamEdge, StreamNode } from './graph/job-graph.js';
export type { PlanFormat } from './graph/plan.js';
export type { JobBuilder, JobDefinition } from './job.js';
export { buildJob, isJobDefinition, job } from './job.js';
export type { RestoreTarget, RunnerEvent } from './job-runner.js';
export type { ExecutionOptions, JobResult, SchedulingPolicy } from './local-executor.js';
export type { JobMetricsSnapshot, OperatorMetricsSnapshot } from './metrics.js';
export type { RestartStrategy } from './restart-strategies.js';
export { RestartStrategies } from './restart-strategies.js';
