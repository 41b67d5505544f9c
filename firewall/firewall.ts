import { run } from '../common/exec.js';

export interface Firewall {
  /** Replaces one section's objects (chains, sets, maps; every name starts with `${section}_`) in one nft transaction; the rest of the table is untouched. `body` is nft syntax as it appears inside `table inet weave { ... }`. Throws (one-line message) and leaves the previous objects in force if nft refuses. */
  replace(section: string, body: string): Promise<void>;
  /** Returns the parsed JSON of `nft -j list table inet weave`. */
  list(): Promise<unknown>;
}

export const NFT = '/usr/sbin/nft';
export const TABLE = 'weave';

interface NftObject {
  chain?: { name: string; table: string; family: string };
  set?: { name: string; table: string; family: string };
  map?: { name: string; table: string; family: string };
}

/**
 * The router's own nftables table (`inet weave`) through `nft -f`: each section replaced in one
 * transaction (its old chains flushed and deleted, its sets and maps deleted, the new ones added),
 * so the kernel has either all of the old or all of the new.
 */
export class NftFirewall implements Firewall {
  /** `nft`: the command (argv), e.g. run in another namespace. */
  constructor(private readonly nft: readonly string[] = [NFT]) {}

  async list(): Promise<unknown> {
    const r = await run([...this.nft, '-j', 'list', 'table', 'inet', TABLE], { timeoutMs: 10_000 });
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return { nftables: [] };
      throw new Error(`nft list: ${oneLine(r.stderr)}`);
    }
    return JSON.parse(r.stdout) as unknown;
  }

  async replace(section: string, body: string): Promise<void> {
    const prefix = `${section}_`;
    const objects = ((await this.list()) as { nftables?: NftObject[] }).nftables ?? [];
    const chains = objects.flatMap((o) => (o.chain?.name.startsWith(prefix) ? [o.chain.name] : []));
    const sets = objects.flatMap((o) => (o.set?.name.startsWith(prefix) ? [o.set.name] : []));
    const maps = objects.flatMap((o) => (o.map?.name.startsWith(prefix) ? [o.map.name] : []));
    const script = [
      `table inet ${TABLE} {`,
      '}',
      ...chains.map((c) => `flush chain inet ${TABLE} ${c}`),
      ...chains.map((c) => `delete chain inet ${TABLE} ${c}`),
      ...sets.map((s) => `delete set inet ${TABLE} ${s}`),
      ...maps.map((m) => `delete map inet ${TABLE} ${m}`),
      `table inet ${TABLE} {`,
      body,
      '}',
      '',
    ].join('\n');
    const r = await run([...this.nft, '-f', '-'], { input: script, timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`nft refused the ${section} section: ${oneLine(r.stderr)}`);
  }
}

const oneLine = (s: string) =>
  s
    .split('\n')
    .filter((l) => /Error/.test(l))
    .join('; ')
    .slice(0, 300) ||
  s.trim().split('\n')[0] ||
  'failed';
