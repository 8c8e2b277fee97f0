/**
 * A check that could not exercise what it checks (a failure check whose run completed no
 * checkpoint, a rescaling check whose job finished before its stop) fails with this error rather
 * than passing: a pass would claim what was never tried.
 */
import { registerErrorClass, TidemarkError } from '../../state/errors.js';

/** fast-check's mark of a precondition failure (`fc.pre`), a global symbol. */
const PRECONDITION = Symbol.for('fast-check/PreconditionFailure');

/**
 * A check could not exercise what it checks with this input; the message says what and why.
 * Called on its own, it fails. Inside a fast-check property it counts as a failed precondition
 * (as `fc.pre(false)`): fast-check skips that input, so shrinking never ends on one that proves
 * nothing, and fails the property if it has to skip too many.
 */
export class CheckNotExercisedError extends TidemarkError {
  constructor(message: string) {
    super('CHECK_NOT_EXERCISED', message);
    this.name = 'CheckNotExercisedError';
  }
  /** What fast-check looks for on a precondition failure. */
  get footprint(): symbol {
    return PRECONDITION;
  }
}
registerErrorClass('CheckNotExercisedError', CheckNotExercisedError);
