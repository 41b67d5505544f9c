import { UserError } from './errors.js';

/**
 * An HTTP route as a subsystem declares it. The API (api/http.ts) matches the path, checks the
 * query, path parameters and body against what is declared here and maps errors to status codes,
 * so handlers receive checked, typed input and never see a raw request.
 */
export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Reads one query or path parameter: returns the value, or throws UserError with the reason. */
export type ParamParser<T> = (raw: string, name: string) => T;
export type ParamSpec = Record<string, ParamParser<unknown>>;

type FieldType = 'string' | 'string[]' | 'boolean';
/** A JSON body's fields: `name: 'string'`, or `'string[]?'` when it may be absent. */
export type BodySpec = Record<string, FieldType | `${FieldType}?`>;
type Value<T> = T extends `string${'' | '?'}` ? string : T extends `string[]${'' | '?'}` ? string[] : boolean;
type RequiredFields<S> = { [K in keyof S as S[K] extends `${string}?` ? never : K]: Value<S[K]> };
type OptionalFields<S> = { [K in keyof S as S[K] extends `${string}?` ? K : never]?: Value<S[K]> };
export type BodyOf<S> = RequiredFields<S> & OptionalFields<S>;

/** Parsed parameters; any may be absent (an optional path segment, a query parameter not given). */
type Parsed<P extends ParamSpec> = { [K in keyof P]?: ReturnType<P[K]> };

export interface RouteInput<B, Q, P> {
  body: B;
  query: Q;
  params: P;
}

export interface Route {
  readonly method: Method;
  /** A fixed path, or one with `:name` segments (a trailing `?` makes a segment optional). */
  readonly path: string;
  readonly params?: ParamSpec;
  readonly query?: ParamSpec;
  readonly body?: BodySpec;
  /** The answer as text/plain unless the client accepts JSON (Weave's own IPAM API answers text). */
  readonly text?: (result: never) => string;
  handle(input: RouteInput<never, never, never>): unknown;
}

/** Declares a route with its handler's input typed from the specs. */
// biome-ignore lint/complexity/noBannedTypes: {} is the spec of no fields (a route without a body, query or params)
export function route<S extends BodySpec = {}, Q extends ParamSpec = {}, P extends ParamSpec = {}, R = unknown>(r: {
  method: Method;
  path: string;
  body?: S;
  query?: Q;
  params?: P;
  text?: (result: Awaited<R>) => string;
  handle(input: RouteInput<BodyOf<S>, Parsed<Q>, Parsed<P>>): R;
}): Route {
  return r as unknown as Route;
}

export function intParam(min: number, max: number): ParamParser<number> {
  return (raw, name) => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max)
      throw new UserError(`invalid ${name}="${raw.slice(0, 20)}": expected an integer ${min}..${max}`);
    return n;
  };
}

export const stringParam: ParamParser<string> = (raw) => raw;
