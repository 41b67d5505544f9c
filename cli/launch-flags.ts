import { type Command, Option as Flag } from 'commander';
import type { Option, OptionSet } from '../common/options.js';

/** `weave launch`'s flags, one per declared option that has a flag, in declaration order. */
export function addFlags(cmd: Command, set: OptionSet): Command {
  for (const o of Object.values(set)) {
    if (!o.flag) continue;
    const f = new Flag(o.flag, o.help);
    if (o.choices) f.choices(o.choices);
    else if (!o.flag.startsWith('--no-')) f.argParser((v: string, prev: unknown) => o.parse(v, prev));
    if (o.default !== undefined && !o.flag.startsWith('--no-')) f.default(o.default, o.shown);
    if (o.env) f.env(o.env);
    cmd.addOption(f);
  }
  return cmd;
}

/**
 * The config the flags (and variables) make, checked against itself; a secret option is taken out
 * and left in this process's environment, for the daemon to read from there.
 */
export function configOf(cmd: Command, set: OptionSet): Record<string, unknown> {
  const given = cmd.opts();
  const cfg: Record<string, unknown> = {};
  const flags = new Map(cmd.options.map((f) => [f.flags, f.attributeName()]));
  for (const [key, o] of Object.entries(set)) {
    const envValue = o.env ? process.env[o.env] || undefined : undefined;
    const value = o.flag
      ? given[flags.get(o.flag)!]
      : envValue === undefined
        ? o.default
        : o.parse(envValue, undefined);
    if (value !== undefined) cfg[key] = value;
  }
  for (const [key, o] of Object.entries(set)) if (cfg[key] !== undefined) (o as Option<unknown>).check?.(cfg[key], cfg);
  for (const [key, o] of Object.entries(set)) {
    if (!o.secret || cfg[key] === undefined) continue;
    process.env[o.env!] = String(cfg[key]);
    delete cfg[key];
  }
  return cfg;
}
