import { run } from '../common/exec.js';
import { log } from '../common/log.js';

/** The router's own nftables table: nothing outside it is ever touched. */
export const TABLE = 'inet weave';

export interface Firewall {
  /** Replaces one section's objects (chains, sets, maps; every name starts with `${section}_`) in one nft transaction; the rest of the table is untouched. `body` is nft syntax as it appears inside `table inet weave { ... }`. Throws (one-line message) and leaves the previous objects in force if nft refuses. */
  replace(section: string, body: string): Promise<void>;
  /** Runs `nft -j list ...`-style reads: returns the parsed JSON of `nft -j list table inet weave`. */
  list(): Promise<unknown>;
}

type Listed = { nftables?: Record<string, { name?: string }>[] };

/** The kinds of object a section may hold, in the order they can be deleted (rules reference the others). */
const KINDS = ['chain', 'set', 'map', 'counter', 'quota', 'limit'] as const;

/**
 * The table through `nft -f -`: each change is one script, which nft applies as one atomic
 * transaction (all of it or none). Changes run one at a time, so a section's read of what it holds
 * and its rewrite never interleave with another's.
 */
export class NftFirewall implements Firewall {
  private tail: Promise<unknown> = Promise.resolve();
  private removed = false;

  /** `nft`: the command (a test runs it inside a lab namespace: `ip netns exec NS nft`). */
  constructor(private readonly nft: readonly string[] = ['nft']) {}

  /** Makes the table if it is not there (what is in it stays: published ports outlive a router restart). */
  ensure(): Promise<void> {
    return this.serial(async () => {
      this.removed = false;
      await this.apply(`table ${TABLE} {}\n`, `the table ${TABLE}`);
    });
  }

  replace(section: string, body: string): Promise<void> {
    if (!/^[a-z][a-z0-9]*$/.test(section)) return Promise.reject(new Error(`invalid firewall section "${section}"`));
    return this.serial(async () => {
      if (this.removed) return; // after weave reset: nothing comes back until the next launch
      const held = await this.objects(section);
      const script = [
        `table ${TABLE} {}`,
        ...held.filter((o) => o.kind === 'chain').map((o) => `flush chain ${TABLE} ${o.name}`),
        ...KINDS.flatMap((k) => held.filter((o) => o.kind === k).map((o) => `delete ${k} ${TABLE} ${o.name}`)),
        `table ${TABLE} {`,
        body,
        '}',
        '',
      ].join('\n');
      await this.apply(script, `the ${section} section`);
    });
  }

  list(): Promise<unknown> {
    return this.serial(async () => {
      const r = await run([...this.nft, '-j', 'list', 'table', ...TABLE.split(' ')]);
      if (r.code !== 0) throw new Error(`nft list table ${TABLE}: ${firstError(r.stderr)}`);
      return JSON.parse(r.stdout) as unknown;
    });
  }

  /** `weave reset`: the table goes, with everything in it; nothing else is touched. */
  remove(): Promise<void> {
    return this.serial(async () => {
      this.removed = true;
      const r = await run([...this.nft, 'delete', 'table', ...TABLE.split(' ')]);
      if (r.code !== 0 && !/No such file/.test(r.stderr))
        throw new Error(`nft delete table ${TABLE}: ${firstError(r.stderr)}`);
      log.info(`removed nftables table ${TABLE}`);
    });
  }

  private async objects(section: string): Promise<{ kind: (typeof KINDS)[number]; name: string }[]> {
    const r = await run([...this.nft, '-j', 'list', 'table', ...TABLE.split(' ')]);
    if (r.code !== 0) return []; // no table yet: the script makes it
    const listed = JSON.parse(r.stdout) as Listed;
    return (listed.nftables ?? []).flatMap((o) =>
      KINDS.flatMap((kind) => {
        const name = o[kind]?.name;
        return name?.startsWith(`${section}_`) ? [{ kind, name }] : [];
      }),
    );
  }

  /** what: the change, for its error ("the policy section"). */
  private async apply(script: string, what: string): Promise<void> {
    const r = await run([...this.nft, '-f', '-'], { input: script });
    if (r.code === 127)
      throw new Error('nft is not installed: the router needs nftables (Debian: apt install nftables)');
    if (r.code !== 0) throw new Error(`nft refused ${what}: ${firstError(r.stderr)}`);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.catch(() => {}).then(fn);
    this.tail = next.catch(() => {});
    return next;
  }
}

/** nft's first error line, without the script excerpt it prints under it. */
const firstError = (stderr: string): string =>
  stderr
    .split('\n')
    .find((l) => /Error/.test(l))
    ?.replace(/^\/dev\/stdin:\S+ /, '')
    .trim() ||
  stderr.trim().split('\n')[0] ||
  'failed';
