import type { Attachments } from '../attach/attachments.js';
import type { RunRequest, RunResult } from '../contract/requests.js';
import { UserError } from '../common/errors.js';
import { route } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import type { DockerClient } from './client.js';
import { containerHost } from './containers.js';
import { runAttached, type ContainerDns } from './run.js';
import { parseRunArgs } from './run-args.js';
import { type PortPublisher, takePortBindings } from './publish.js';
import { ContainerWatcher } from './watcher.js';

/**
 * Docker containers on the overlay: `weave run`, and the events watcher that detaches dead
 * containers, releases their addresses after a grace period and re-attaches restarted ones.
 */
export function containersSubsystem(
  docker: DockerClient,
  attachments: Attachments,
  graceMs: number,
  ports: PortPublisher,
  dns?: ContainerDns,
): Subsystem {
  const watcher = new ContainerWatcher(docker, containerHost(attachments), graceMs);
  return {
    name: 'containers',
    routes: [
      route({
        method: 'POST',
        path: '/run',
        body: { cidrs: 'string[]?', args: 'string[]', env: 'string[]?' },
        handle: ({ body }) => run(docker, attachments, ports, body, dns),
      }),
      // The router's DNS for containers weave does not start itself (docker run --network weave): the bridge gets an
      // overlay address if it has none, so POST.
      route({
        method: 'POST',
        path: '/dns-args',
        handle: async () => {
          if (!dns) throw new UserError('the router runs without DNS');
          return { ip: (await dns.resolver()).ip, domain: dns.domain };
        },
      }),
    ],
    start: async () => {
      await ports.restore(); // before the watcher adopts the containers: published ports never blink
      await watcher.start();
    },
    stop: async () => watcher.stop(),
  };
}

/**
 * `weave run [ADDR...] <docker run args>`: creates and starts the container, then attaches it and publishes its
 * ports (-p).
 * `env` carries the caller's values of variables named by `-e NAME`. The container's resolver is
 * the router's DNS unless `--without-dns`.
 */
async function run(
  docker: DockerClient,
  attachments: Attachments,
  ports: PortPublisher,
  req: RunRequest,
  dns?: ContainerDns,
): Promise<RunResult> {
  const env = Object.fromEntries(
    (req.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  const create = parseRunArgs(req.args, env);
  takePortBindings(create.body);
  const id = await runAttached(
    docker,
    create.body,
    create.name,
    async (id) => {
      await attachments.attach({ target: `docker:${id}`, cidrs: req.cidrs });
      await ports.settled(id);
    },
    create.withoutDns ? undefined : dns,
  );
  return { id };
}
