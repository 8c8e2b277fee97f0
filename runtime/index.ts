/**
 * The `tidemark` package entry: the stream API, state descriptors, jobs and execution.
 * Everything exported here is public API; nothing else is.
 *
 * NOTE: every export is listed by name (no `export *`), so that nothing becomes API by being
 * exported from a module for another module's sake: the job graph, the scheduling policy, the
 * operators behind the sinks and the like stay out. Members of public types that are plumbing carry
 * the TSDoc tag that marks them internal, and `npm run build` strips them from the published
 * declarations (`stripInternal`); test/e2e/build.test.ts checks that nothing published refers to
 * them.
 */
export type {
  AllWindowFunction,
  BroadcastContext,
  BroadcastProcessFunctionLike,
  BroadcastState,
  Clock,
  CoFlatMapFunction,
  CoGroupFunction,
  Collector,
  CoMapFunction,
  CoProcessFunctionLike,
  Counter,
  DeltaFunction,
  EnvironmentOptions,
  EvictorContext,
  FileSinkOptions,
  FileSourceOptions,
  FileSplit,
  FilterFunction,
  FlatJoinFunction,
  FlatMapFunction,
  GeneratorOptions,
  InputStatus,
  JoinFunction,
  KeyedBroadcastContext,
  KeyedBroadcastOnTimerContext,
  KeyedBroadcastProcessFunctionLike,
  KeyedCoProcessFunctionLike,
  KeyedProcessContext,
  KeyedProcessFunctionLike,
  KeyedReadOnlyBroadcastContext,
  KeyedStateStore,
  KeySelector,
  MapFunction,
  MetricGroup,
  NumericField,
  OnMergeContext,
  OnTimerContext,
  ProcessAllWindowContext,
  ProcessAllWindowFunctionLike,
  ProcessContext,
  ProcessFunctionLike,
  ProcessJoinContext,
  ProcessJoinFunctionLike,
  ProcessWindowContext,
  ProcessWindowFunctionLike,
  ReaderOutput,
  ReadOnlyBroadcastContext,
  ReadOnlyBroadcastState,
  RedisConnection,
  RedisSinkOptions,
  RedisStreamEntry,
  RedisStreamSourceOptions,
  RedisStreamSplit,
  RichFunction,
  RuntimeContext,
  SessionWindowTimeGapExtractor,
  SinkContext,
  SinkFactory,
  SinkFunction,
  Source,
  SourceReader,
  SourceReaderContext,
  SourceSplit,
  TaggedUnion,
  TaskInfo,
  TimeDomain,
  TimerService,
  TimestampAssigner,
  TimestampedValue,
  TransactionContext,
  TriggerContext,
  WatermarkGenerator,
  WatermarkGeneratorContext,
  WatermarkOutput,
  WindowAssignerContext,
  WindowFunction,
} from '../operators/index.js';
export {
  AbstractRichFunction,
  AbstractStreamOperator,
  AllWindowedStream,
  AsyncIterableSource,
  BoundedOutOfOrdernessWatermarks,
  BroadcastConnectedStream,
  BroadcastProcessFunction,
  BroadcastStream,
  CollectedStream,
  CollectionSource,
  ConnectedStreams,
  ContinuousEventTimeTrigger,
  ContinuousProcessingTimeTrigger,
  CoProcessFunction,
  CountEvictor,
  CountTrigger,
  DataStream,
  DataStreamSink,
  DeltaEvictor,
  DynamicEventTimeSessionWindows,
  DynamicProcessingTimeSessionWindows,
  END_OF_INPUT,
  EventTimeSessionWindows,
  EventTimeTrigger,
  Evictor,
  FileSink,
  FileSource,
  GeneratorSource,
  GlobalWindow,
  GlobalWindows,
  IntervalJoin,
  IntervalJoined,
  isFire,
  isPurge,
  KeyedBroadcastProcessFunction,
  KeyedCoProcessFunction,
  KeyedProcessFunction,
  KeyedStream,
  MAX_WATERMARK,
  MergingWindowAssigner,
  MIN_WATERMARK,
  MORE_AVAILABLE,
  NeverTrigger,
  NO_TIMESTAMP,
  NOTHING_AVAILABLE,
  OneInputStreamOperator,
  OutputTag,
  ProcessAllWindowFunction,
  ProcessFunction,
  ProcessingTimeSessionWindows,
  ProcessingTimeTrigger,
  ProcessJoinFunction,
  ProcessWindowFunction,
  PurgingTrigger,
  RedisSink,
  RedisStreamSource,
  RichFilterFunction,
  RichFlatMapFunction,
  RichMapFunction,
  removeElementsIf,
  SlidingEventTimeWindows,
  SlidingProcessingTimeWindows,
  StreamEnvironment,
  streamIdTime,
  TimeEvictor,
  TimeWindow,
  Trigger,
  TriggerResult,
  TumblingEventTimeWindows,
  TumblingProcessingTimeWindows,
  TwoInputStreamOperator,
  TwoPhaseCommitSink,
  TwoStreams,
  TwoStreamsKeyed,
  TwoStreamsWhere,
  WatermarkStrategy,
  Window,
  WindowAssigner,
  WindowedCoGroup,
  WindowedJoin,
  WindowedStream,
} from '../operators/index.js';
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
export { IncompatibleCheckpointError } from '../state/snapshot/format.js';
export type { StateBackendConfig, StateBackendKind } from '../state/state-backends.js';
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
export type { JobResult } from './execution/results.js';
export type { JobGraphOptions } from './graph/job-graph.js';
export type { PlanFormat, PlanOptions } from './graph/plan.js';
export type { JobBuilder, JobDefinition } from './job.js';
export { buildJob, job } from './job.js';
export type { DistributedSettings, RestoreTarget, RunnerEvent, RunSettings } from './job-runner.js';
export type { JobMetricsSnapshot, OperatorMetricsSnapshot } from './metrics.js';
export type { NodeMetricsSnapshot, RuntimeMetrics, SlotRuntimeMetrics } from './observe/node-metrics.js';
export type { RestartStrategy } from './restart-strategies.js';
export { RestartStrategies } from './restart-strategies.js';
