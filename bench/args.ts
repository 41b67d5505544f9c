/** An integer option's value, at least min: a bad one throws naming the flag, with the usage line. */
export function intArg(flag: string, v: string | undefined, min: number, usage: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${flag} needs an integer >= ${min}, got "${v ?? ''}"\n${usage}`);
  return n;
}
