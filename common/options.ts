/**
 * Launch options, declared once by the subsystem they belong to (its `options.ts`): the flag, its
 * help, its type, bounds and default. `weave launch` builds its flags and `--help` from the
 * declarations, and the daemon fills what a config leaves out with their defaults, so a new option
 * is one entry in its subsystem's file. A declaration is data: `options.ts` files import only
 * common/ and contract/, so the CLI reads them without loading the daemon's code.
 */
export interface Option<T> {
  /** `--name <arg>`, `--name` or `--no-name`; none: set only by `env` (a lab or a packaging knob). */
  readonly flag?: string;
  readonly help: string;
  /** Turns the text of the flag (or of the variable) into the value; `prev` is the value so far (repeatable flags). */
  parse(text: string, prev: T | undefined): T;
  readonly default?: T;
  /** How the default reads in `--help` (a duration in seconds, where the value is in milliseconds). */
  readonly shown?: string;
  /** A variable that gives the value when the flag is not given. */
  readonly env?: string;
  /** The values a choice may take, for `--help`. */
  readonly choices?: readonly string[];
  /** Never in a config or a command line: the launcher hands it to the daemon in `env`. */
  readonly secret?: boolean;
  /** Checks the value against the rest of the config (given options only); throws a one-line error. */
  check?(value: T, cfg: Readonly<Record<string, unknown>>): void;
}

export type OptionSet = Record<string, Option<unknown>>;

/** The config an option set makes: a key per option, undefined where it has no default and was not given. */
export type ConfigOf<S extends OptionSet> = {
  -readonly [K in keyof S]: S[K] extends { default: infer T }
    ? T
    : S[K] extends Option<infer T>
      ? T | undefined
      : never;
};

/** An option that always has a value. */
export type Defaulted<T> = Option<T> & { readonly default: T };

/** Every option's default, by key. */
export function defaultsOf<S extends OptionSet>(set: S): Partial<ConfigOf<S>> {
  const out: Record<string, unknown> = {};
  for (const [key, o] of Object.entries(set)) if (o.default !== undefined) out[key] = o.default;
  return out as Partial<ConfigOf<S>>;
}

/** An integer within bounds. */
export function int(
  flag: string,
  help: string,
  o: { min: number; max: number; default: number; what: string },
): Defaulted<number>;
export function int(flag: string, help: string, o: { min: number; max: number; what: string }): Option<number>;
export function int(flag: string, help: string, o: { min: number; max: number; default?: number; what: string }) {
  return option<number>({ flag, help, default: o.default, parse: (v) => intIn(o.what, o.min, o.max)(v) });
}

/** A duration given in whole seconds, kept in milliseconds. */
export function seconds(flag: string, help: string, o: { min: number; max: number; default: number; what: string }) {
  return option<number>({
    flag,
    help,
    default: o.default * 1000,
    shown: String(o.default),
    parse: (v) => intIn(o.what, o.min, o.max)(v) * 1000,
  });
}

/** Text, checked (and normalised) by `check` when given. */
type TextOptions = { env?: string; check?: (v: string) => string };
export function text(flag: string | undefined, help: string, o: TextOptions & { default: string }): Defaulted<string>;
export function text(flag: string | undefined, help: string, o?: TextOptions): Option<string>;
export function text(flag: string | undefined, help: string, o: TextOptions & { default?: string } = {}) {
  return option<string>({ flag, help, default: o.default, env: o.env, parse: (v) => (o.check ? o.check(v) : v) });
}

/** One of a fixed set of words. */
export function choice<C extends string>(flag: string, help: string, choices: readonly C[], dflt: C) {
  return option<C>({
    flag,
    help,
    default: dflt,
    choices,
    parse: (v) => {
      if (!(choices as readonly string[]).includes(v))
        throw new Error(`invalid ${flag.split(' ')[0]} "${v}": expected one of ${choices.join(', ')}`);
      return v as C;
    },
  });
}

/** `--no-thing`: on unless turned off. */
export function switchOff(flag: string, help: string) {
  return option<boolean>({ flag, help, default: true, parse: () => false });
}

/** `--thing`: off unless given. */
export function switchOn(flag: string, help: string) {
  return option<boolean>({ flag, help, default: false, parse: () => true });
}

/** A flag given any number of times, each value checked by `check`. */
export function repeated(flag: string, help: string, check: (v: string) => void = () => {}) {
  return option<string[]>({ flag, help, default: [], parse: (v, prev) => (check(v), [...(prev ?? []), v]) });
}

export const option = <T>(o: Option<T>): Defaulted<T> => o as Defaulted<T>;

/** A declaration with more to it than a builder gives (a check against other options, a secret). */
export const extend = <T>(o: Option<T>, more: Partial<Option<T>>): Option<T> => ({ ...o, ...more });

export function intIn(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max)
      throw new Error(`invalid ${name} "${v}": expected an integer ${min}..${max}`);
    return n;
  };
}
