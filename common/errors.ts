/**
 * The caller asked for something that cannot be done as asked (bad input, an unknown target, no
 * free address): the API answers with `status` and the message, the CLI prints it on one line.
 * The statuses are Weave's where Weave has the same route, so scripts written for it still work.
 */
export class UserError extends Error {
  readonly httpStatus: number = 400;
}

/** What was asked for does not exist (an identity, a container, a stack): 404. */
export class NotFound extends UserError {
  override readonly httpStatus = 404;
}

/** What was asked for is someone else's (an address another identity holds, a name taken): 409. */
export class Conflict extends UserError {
  override readonly httpStatus = 409;
}

/** Not yet: the service waits for something (IPAM for its peers to agree on the first split): 503. */
export class NotReady extends UserError {
  override readonly httpStatus = 503;
}

/** The HTTP status of an error thrown by a route: its own, or 500 for a fault of ours. */
export const statusOf = (err: unknown): number => (err instanceof UserError ? err.httpStatus : 500);
