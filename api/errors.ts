/** A request error the client caused: answered with 400 and a one-line message. */
export class BadRequest extends Error {}

/** A path nobody serves: answered with 404. */
export class NotFound extends Error {}
