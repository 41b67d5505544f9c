/**
 * The caller asked for something that cannot be done as asked (bad input, an unknown target, no
 * free address): the API answers 400 with the message, the CLI prints it on one line.
 */
export class UserError extends Error {}

/** What was asked for does not exist: the API answers 404. */
export class NotFound extends Error {}
