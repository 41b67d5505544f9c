import type { DockerClient } from './client.js';

/**
 * The cluster's resolver for containers: the router's DNS (an address on the bridge) and its
 * domain. `resolver` gives the bridge an address when it has none; `undo` takes back one given for
 * a run that then failed, so a failed run leaves nothing behind.
 */
export interface ContainerDns {
  domain: string;
  resolver(): Promise<{ ip: string; undo?: () => Promise<unknown> }>;
}

/**
 * Creates and starts a container, then attaches it with `attach`; on any failure the container
 * is removed again, so nothing is left half-made. With `dns`, the container's resolver is the
 * router's DNS. Used by `weave run` and by the scheduler for its replicas.
 */
export async function runAttached(
  docker: DockerClient,
  body: { HostConfig?: object },
  name: string | undefined,
  attach: (id: string) => Promise<unknown>,
  dns?: ContainerDns,
): Promise<string> {
  const resolver = dns ? await dns.resolver() : undefined;
  if (resolver) body.HostConfig = { ...body.HostConfig, Dns: [resolver.ip], DnsSearch: [dns!.domain] };
  let id: string | undefined;
  try {
    id = await docker.create(body, name);
    await docker.start(id);
    await attach(id);
  } catch (err) {
    if (id) await docker.remove(id, true).catch(() => {});
    await resolver?.undo?.().catch(() => {});
    throw err;
  }
  return id;
}
