import type {
  AggregatingStateDescriptor,
  ListStateDescriptor,
  MapStateDescriptor,
  ReducingStateDescriptor,
  ValueStateDescriptor,
} from '../state/descriptors.js';
import { StateError } from '../state/errors.js';
import type { Key } from '../state/hash.js';
import type { KeyedStateBackend } from '../state/keyed-backend.js';
import type { OperatorContext } from './contract.js';
import type { RuntimeContext } from './functions.js';

/** The {@link RuntimeContext} user functions of an operator see. */
export function createRuntimeContext(ctx: OperatorContext<unknown>): RuntimeContext {
  const keyed = (what: string): KeyedStateBackend => {
    if (ctx.keyedState === undefined)
      throw new StateError(
        `${ctx.describe()}: ${what} is keyed state, which can only be used on a keyed stream, i.e. after keyBy()`,
        {
          jobName: ctx.info.jobName,
          operatorId: ctx.info.operatorId,
          operatorName: ctx.info.operatorName,
          subtaskIndex: ctx.info.subtaskIndex,
        },
      );
    return ctx.keyedState;
  };
  return {
    taskInfo: ctx.info,
    metrics: ctx.metrics,
    getState: <T>(d: ValueStateDescriptor<T>) => keyed(`value state '${d.name}'`).getState(d),
    getListState: <T>(d: ListStateDescriptor<T>) => keyed(`list state '${d.name}'`).getState(d),
    getMapState: <UK extends Key, UV>(d: MapStateDescriptor<UK, UV>) =>
      keyed(`map state '${d.name}'`).getState(d),
    getReducingState: <T>(d: ReducingStateDescriptor<T>) => keyed(`reducing state '${d.name}'`).getState(d),
    getAggregatingState: <IN, ACC, OUT>(d: AggregatingStateDescriptor<IN, ACC, OUT>) =>
      keyed(`aggregating state '${d.name}'`).getState(d),
    getOperatorListState: <T>(d: ListStateDescriptor<T>) => ctx.operatorState.getListState(d),
    getUnionListState: <T>(d: ListStateDescriptor<T>) => ctx.operatorState.getUnionListState(d),
    isRestored: () => ctx.restored,
  };
}
