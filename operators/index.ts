/** The user-facing API of `operators/` (re-exported by the `tidemark` entry). */

export type {
  BroadcastContext,
  BroadcastProcessFunctionLike,
  BroadcastState,
  CoFlatMapFunction,
  CoMapFunction,
  CoProcessFunctionLike,
  KeyedBroadcastContext,
  KeyedBroadcastOnTimerContext,
  KeyedBroadcastProcessFunctionLike,
  KeyedCoProcessFunctionLike,
  KeyedReadOnlyBroadcastContext,
  ProcessJoinContext,
  ProcessJoinFunctionLike,
  ReadOnlyBroadcastContext,
  ReadOnlyBroadcastState,
} from './co-functions.js';
export {
  BroadcastProcessFunction,
  CoProcessFunction,
  KeyedBroadcastProcessFunction,
  KeyedCoProcessFunction,
  ProcessJoinFunction,
} from './co-functions.js';
export {
  BroadcastConnectedStream,
  BroadcastStream,
  ConnectedStreams,
  IntervalJoin,
  IntervalJoined,
} from './connected-streams.js';
export type {
  RedisConnection,
  RedisStreamEntry,
  RedisStreamSourceOptions,
  RedisStreamSplit,
} from './connectors/redis.js';
export { RedisStreamSource, streamIdTime } from './connectors/redis.js';
export type { RedisSinkOptions } from './connectors/redis-sink.js';
export { RedisSink } from './connectors/redis-sink.js';
export type { Clock, Counter, MetricGroup, TaskInfo } from './contract.js';
export { MAX_WATERMARK, MIN_WATERMARK, NO_TIMESTAMP } from './contract.js';
export type { SinkFactory } from './data-stream.js';
export { CollectedStream, DataStream, DataStreamSink, KeyedStream } from './data-stream.js';
export type { EnvironmentOptions } from './environment.js';
export { StreamEnvironment } from './environment.js';
export type {
  Collector,
  FilterFunction,
  FlatMapFunction,
  KeyedProcessContext,
  KeyedProcessFunctionLike,
  KeySelector,
  MapFunction,
  OnTimerContext,
  ProcessContext,
  ProcessFunctionLike,
  RichFunction,
  RuntimeContext,
  SinkContext,
  SinkFunction,
  TimeDomain,
  TimerService,
} from './functions.js';
export {
  AbstractRichFunction,
  KeyedProcessFunction,
  ProcessFunction,
  RichFilterFunction,
  RichFlatMapFunction,
  RichMapFunction,
} from './functions.js';
export type { CoGroupFunction, FlatJoinFunction, JoinFunction, TaggedUnion } from './joins/window-join.js';
export {
  TwoStreams,
  TwoStreamsKeyed,
  TwoStreamsWhere,
  WindowedCoGroup,
  WindowedJoin,
} from './joins/window-join.js';
export { AbstractStreamOperator, OneInputStreamOperator, TwoInputStreamOperator } from './operator.js';
export { OutputTag } from './output-tag.js';
export type { FileSinkOptions } from './sinks/file-sink.js';
export { FileSink } from './sinks/file-sink.js';
export type { TransactionContext } from './sinks/two-phase-commit.js';
export { TwoPhaseCommitSink } from './sinks/two-phase-commit.js';
export { AsyncIterableSource } from './sources/async-iterable.js';
export { CollectionSource } from './sources/collection.js';
export type { FileSourceOptions, FileSplit } from './sources/file-source.js';
export { FileSource } from './sources/file-source.js';
export type { GeneratorOptions } from './sources/generator.js';
export { GeneratorSource } from './sources/generator.js';
export type {
  InputStatus,
  ReaderOutput,
  Source,
  SourceReader,
  SourceReaderContext,
  SourceSplit,
} from './sources/source.js';
export { END_OF_INPUT, MORE_AVAILABLE, NOTHING_AVAILABLE } from './sources/source.js';
export type {
  TimestampAssigner,
  WatermarkGenerator,
  WatermarkGeneratorContext,
  WatermarkOutput,
} from './watermarks.js';
export { BoundedOutOfOrdernessWatermarks, WatermarkStrategy } from './watermarks.js';
export type { SessionWindowTimeGapExtractor, WindowAssignerContext } from './windows/assigners.js';
export {
  DynamicEventTimeSessionWindows,
  DynamicProcessingTimeSessionWindows,
  EventTimeSessionWindows,
  GlobalWindows,
  MergingWindowAssigner,
  ProcessingTimeSessionWindows,
  SlidingEventTimeWindows,
  SlidingProcessingTimeWindows,
  TumblingEventTimeWindows,
  TumblingProcessingTimeWindows,
  WindowAssigner,
} from './windows/assigners.js';
export type { DeltaFunction, EvictorContext, TimestampedValue } from './windows/evictors.js';
export { CountEvictor, DeltaEvictor, Evictor, removeElementsIf, TimeEvictor } from './windows/evictors.js';
export type { OnMergeContext, TriggerContext } from './windows/triggers.js';
export {
  ContinuousEventTimeTrigger,
  ContinuousProcessingTimeTrigger,
  CountTrigger,
  EventTimeTrigger,
  isFire,
  isPurge,
  NeverTrigger,
  ProcessingTimeTrigger,
  PurgingTrigger,
  Trigger,
  TriggerResult,
} from './windows/triggers.js';
export type {
  AllWindowFunction,
  KeyedStateStore,
  ProcessAllWindowContext,
  ProcessAllWindowFunctionLike,
  ProcessWindowContext,
  ProcessWindowFunctionLike,
  WindowFunction,
} from './windows/window-functions.js';
export { ProcessAllWindowFunction, ProcessWindowFunction } from './windows/window-functions.js';
export type { NumericField } from './windows/windowed-stream.js';
export { AllWindowedStream, WindowedStream } from './windows/windowed-stream.js';
export { GlobalWindow, TimeWindow, Window } from './windows/windows.js';
