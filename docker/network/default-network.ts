// The network `weave` that `docker run --network weave` joins: made by the router when the engine
// has none of that name, never a second one (a launch again, a restart: the one there is kept).
import { log } from '../../common/log.js';
import type { DockerClient } from '../client.js';
import { DockerError } from '../client.js';
import { DRIVER_NAME } from './driver.js';
import { createNetwork, networkNamed } from './engine-networks.js';

export const DEFAULT_NETWORK = 'weave';

export async function ensureDefaultNetwork(docker: DockerClient, subnet: string): Promise<void> {
  const there = await networkNamed(docker, DEFAULT_NETWORK);
  if (there) {
    if (there.Driver !== DRIVER_NAME)
      log.warn(`docker network ${DEFAULT_NETWORK} exists with driver ${there.Driver}, not ${DRIVER_NAME}: left alone`);
    return;
  }
  try {
    await createNetwork(docker, DEFAULT_NETWORK, DRIVER_NAME, subnet);
    log.info(`created docker network ${DEFAULT_NETWORK} (driver ${DRIVER_NAME}, subnet ${subnet})`);
  } catch (err) {
    if (err instanceof DockerError && err.status === 409) return; // made meanwhile: one is enough
    throw err;
  }
}
