import { checkAddressSpec } from '../../common/address-spec.js';
import type { DockerClient } from '../client.js';
import { type PortPublisher, takePortBindings } from '../publish.js';
import { type Adapter, type HookedEndpoint, HookError } from './hooks.js';

/** Where the wait program is mounted in a container: Weave's proxy did the same with weavewait. */
export const WAIT_MOUNT = '/w';
/** Marks a container this adapter prepared, with what it asked for. */
export const PROXY_LABEL = 'works.weave.proxy';

interface Prepared {
  cidrs: string[];
}

export interface NetworkAdapterDeps {
  docker: DockerClient;
  /** Attaches a running container (by full id) with Weave's address specs; returns its addresses (CIDRs). */
  attach(id: string, cidrs: string[]): Promise<{ cidrs: string[] }>;
  isAttached(id: string): boolean;
  ports: Pick<PortPublisher, 'settled'>;
  /** The directory holding the wait program as `w`. */
  waitDir: string;
  /** The router's DNS for containers (an address on the bridge). */
  dns?: { domain: string; resolver(): Promise<{ ip: string }> };
}

type Body = {
  Image?: string;
  Env?: string[];
  Entrypoint?: string[] | string | null;
  Cmd?: string[] | string | null;
  Labels?: Record<string, string>;
  HostConfig?: {
    Binds?: string[];
    PortBindings?: Record<string, { HostIp?: string; HostPort?: string }[]>;
    Dns?: string[];
    DnsSearch?: string[];
  };
};

const asList = (v: string[] | string | null | undefined): string[] | undefined =>
  v === undefined || v === null ? undefined : Array.isArray(v) ? v : [v];

/**
 * WEAVE_CIDR: Weave's address specs separated by spaces (10.32.5.5/12, net:10.40.0.0/16, net:default); empty: the
 * default subnet.
 */
export function parseWeaveCidr(value: string | undefined): string[] | 'none' {
  const specs = (value ?? '')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((s) => s.replace(/^ip:/, ''));
  if (specs.length === 1 && specs[0] === 'none') return 'none';
  for (const s of specs) {
    try {
      checkAddressSpec(s);
    } catch (err) {
      throw new HookError(`invalid WEAVE_CIDR "${value}": ${(err as Error).message}`, 400);
    }
  }
  return specs;
}

/**
 * The network adapter: a container created through the proxy gets the wait program as its first
 * process (so it starts once ethwe is up), the router's DNS, and its published ports taken over;
 * once the engine has started it, it is attached with the addresses WEAVE_CIDR asks for (or the
 * default subnet). WEAVE_CIDR=none leaves a container alone. If attaching fails, the container is
 * removed: the client gets the error, never a container that waits forever.
 */
export function networkAdapter(d: NetworkAdapterDeps): { adapter: Adapter; endpoints: HookedEndpoint[] } {
  const adapter: Adapter = {
    name: 'weave',
    async pre(req) {
      if (!/\/containers\/create$/.test(req.Request.split('?')[0])) return req;
      const body = JSON.parse(req.Body || '{}') as Body;
      const cidrs = parseWeaveCidr(
        (body.Env ?? []).find((e) => e.startsWith('WEAVE_CIDR='))?.slice('WEAVE_CIDR='.length),
      );
      if (cidrs === 'none') return req;
      // The wait program runs the command the container would have run: Docker drops the image's
      // Cmd when the request names an Entrypoint.
      const image = body.Image
        ? await d.docker
            .request<{ Config?: { Entrypoint?: string[] | null; Cmd?: string[] | null } }>(
              'GET',
              `/images/${encodeURIComponent(body.Image)}/json`,
            )
            .catch(() => undefined)
        : undefined;
      const entrypoint = asList(body.Entrypoint) ?? asList(image?.Config?.Entrypoint) ?? [];
      const cmd = asList(body.Cmd) ?? (asList(body.Entrypoint) ? [] : (asList(image?.Config?.Cmd) ?? []));
      body.Entrypoint = [`${WAIT_MOUNT}/w`, ...entrypoint];
      body.Cmd = cmd;
      const hc = (body.HostConfig ??= {});
      hc.Binds = [...(hc.Binds ?? []), `${d.waitDir}:${WAIT_MOUNT}:ro`];
      try {
        takePortBindings(body);
      } catch (err) {
        throw new HookError((err as Error).message, 400);
      }
      if (d.dns && !hc.Dns?.length) {
        const r = await d.dns.resolver();
        hc.Dns = [r.ip];
        hc.DnsSearch = [d.dns.domain];
      }
      body.Labels = { ...body.Labels, [PROXY_LABEL]: JSON.stringify({ cidrs } satisfies Prepared) };
      return { ...req, Body: JSON.stringify(body) };
    },
    async post(req, res) {
      const m = /\/containers\/([^/]+)\/start$/.exec(req.Request.split('?')[0]);
      if (!m || res.Code >= 300) return res;
      const c = await d.docker.request<{ Id: string; Config: { Labels?: Record<string, string> | null } }>(
        'GET',
        `/containers/${encodeURIComponent(decodeURIComponent(m[1]))}/json`,
      );
      const label = c.Config.Labels?.[PROXY_LABEL];
      if (!label || d.isAttached(c.Id)) return res;
      const prepared = JSON.parse(label) as Prepared;
      try {
        await d.attach(c.Id, prepared.cidrs);
        await d.ports.settled(c.Id);
      } catch (err) {
        await d.docker.remove(c.Id, true).catch(() => {});
        throw new HookError(
          `weave could not attach container ${c.Id.slice(0, 12)} (removed): ${(err as Error).message}`,
        );
      }
      return res;
    },
  };
  return {
    adapter,
    endpoints: [
      { method: 'POST', pattern: '/containers/create', pre: [adapter], post: [] },
      { method: 'POST', pattern: '/containers/*/start', pre: [], post: [adapter] },
    ],
  };
}
