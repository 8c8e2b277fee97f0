/** Names a side output; its type parameter is the type of its records. */
import { InvalidArgumentError } from '../state/errors.js';
export class OutputTag<T> {
  declare readonly __type?: T;
  constructor(readonly id: string) {
    if (typeof id !== 'string' || id.length === 0)
      throw new InvalidArgumentError('an OutputTag needs a non-empty id');
  }
  toString(): string {
    return `OutputTag(${this.id})`;
  }
}
