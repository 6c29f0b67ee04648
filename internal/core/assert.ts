/**
 * Assertions are for programmer errors only: a broken invariant means the code is wrong, so we crash loudly
 * rather than carry on and corrupt data. Operating errors (a dead node, a bad checksum, bad input) are handled
 * with StrataError instead.
 */
export class AssertionError extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionError';
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}
