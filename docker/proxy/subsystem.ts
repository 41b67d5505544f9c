import { join } from 'node:path';
import { CHECKOUT } from '../../common/checkout.js';
import { log } from '../../common/log.js';
import type { Subsystem } from '../../common/subsystem.js';
import { DATA_FILES } from '../../contract/files.js';
import type { Attachments } from '../../attach/attachments.js';
import { DEFAULT_DOCKER_HOST, type DockerClient } from '../client.js';
import type { ContainerDns } from '../run.js';
import type { PortPublisher } from '../publish.js';
import { networkAdapter } from './network-adapter.js';
import { loadAdapterConfig, mergeEndpoints } from './powerstrip.js';
import { DockerProxy, probeListen } from './proxy.js';

/** Where the build puts the wait program (native/wait) as `w`: the directory is mounted into containers. */
export const WAIT_DIR = join(CHECKOUT, 'native', 'wait', 'build');

/** The engine the router talks to: DOCKER_HOST, unless that is our own proxy (a shell after eval $(weave env)). */
export function engineHost(env: NodeJS.ProcessEnv, proxySocket: string): string {
  const host = env.DOCKER_HOST || DEFAULT_DOCKER_HOST;
  return host === `unix://${proxySocket}` ? env.ORIG_DOCKER_HOST || DEFAULT_DOCKER_HOST : host;
}

/** What could stop the proxy (a bad adapters file, an address in use), found before a launch makes anything. */
export async function checkProxy(dataDir: string, o: { tcp?: string; adapters?: string }): Promise<void> {
  if (o.adapters) loadAdapterConfig(o.adapters, { weave: { name: 'weave' } });
  await probeListen({ socket: join(dataDir, DATA_FILES.proxySocket), tcp: o.tcp });
}

export interface ProxyOptions {
  dataDir: string;
  tcp?: string;
  adaptersFile?: string;
}

/**
 * The Docker API proxy: plain `docker run` through it joins the overlay (the network adapter), and
 * external Powerstrip adapters named in a YAML file hook the endpoints they ask for.
 */
export function proxySubsystem(
  docker: DockerClient,
  attachments: Attachments,
  dns: ContainerDns,
  ports: PortPublisher,
  o: ProxyOptions,
): Subsystem {
  const socket = join(o.dataDir, DATA_FILES.proxySocket);
  const network = networkAdapter({
    docker,
    ports,
    dns,
    waitDir: WAIT_DIR,
    isAttached: (id) => attachments.attached.has(id),
    attach: (id, cidrs) => attachments.attach({ target: `docker:${id}`, cidrs }),
  });
  const endpoints = mergeEndpoints(
    network.endpoints,
    o.adaptersFile ? loadAdapterConfig(o.adaptersFile, { [network.adapter.name]: network.adapter }) : [],
  );
  const adapters = [...new Set(endpoints.flatMap((e) => [...e.pre, ...e.post].map((a) => a.name)))];
  let proxy: DockerProxy | undefined;
  return {
    name: 'proxy',
    async start() {
      proxy = await DockerProxy.listen({ engine: docker.host, socket, tcp: o.tcp, endpoints });
      log.info(
        `Docker API proxy on unix://${socket}${o.tcp ? ` and tcp://${o.tcp}` : ''} for ${docker.host}; adapters: ${adapters.join(', ')}`,
      );
    },
    async stop() {
      await proxy?.close();
    },
    report: () => ({ proxy: { socket, tcp: o.tcp, engine: docker.host, adapters, counters: proxy?.counters } }),
    status: () => ({
      service: 'proxy',
      rows: [
        ['Address', `unix://${socket}${o.tcp ? `, tcp://${o.tcp}` : ''}`],
        ['Engine', docker.host],
        ['Adapters', adapters.join(', ')],
      ],
    }),
  };
}
