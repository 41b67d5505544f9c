// The adapter chain's shared types: what the proxy hands to hooks and what hooks hand back.

/** Powerstrip's shapes (adapter protocol version 1). Body is the JSON text of the request/response body. */
export interface ClientRequest {
  Method: string;
  Request: string;
  Body: string;
}
export interface ServerResponse {
  ContentType: string;
  Body: string;
  Code: number;
}

/** An adapter: pre may rewrite the request before the engine sees it; post may rewrite the engine's response. */
export interface Adapter {
  name: string;
  pre?(req: ClientRequest): Promise<ClientRequest>;
  post?(req: ClientRequest, res: ServerResponse): Promise<ServerResponse>;
}

/** A hook failing with a message the docker CLI shows ("Error response from daemon: ..."), status default 500. */
export class HookError extends Error {
  constructor(
    message: string,
    readonly status = 500,
  ) {
    super(message);
  }
}

/**
 * "POST /containers/create", "POST /containers/*\/start" (Powerstrip's "/*\/containers/create" with the
 * version segment also accepted); the API version prefix /v1.NN of a request is ignored when
 * matching; * matches one path segment; query strings are ignored.
 */
export interface HookedEndpoint {
  method: string;
  pattern: string;
  pre: Adapter[];
  post: Adapter[];
}
