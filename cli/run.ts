import { DockerClient } from '../docker/client.js';
import { parseRunArgs } from '../docker/run-args.js';
import { call, tryReport, NotRunning } from './client.js';
import { isAddressSpec, checkAddressSpec } from './addresses.js';

/**
 * `weave run [ADDR...] <docker run args>`: creates and starts the container through the Engine API,
 * then has the router attach it. Returns its id once it is reachable; on any failure the container
 * is removed again, so nothing is left half-made.
 */
export async function runContainer(args: string[]): Promise<string> {
  let i = 0;
  while (i < args.length && isAddressSpec(args[i])) checkAddressSpec(args[i++]);
  const cidrs = args.slice(0, i);
  const req = parseRunArgs(args.slice(i));
  if (!(await tryReport())) throw new NotRunning();
  const docker = new DockerClient();
  const id = await docker.create(req.body, req.name);
  try {
    await docker.start(id);
    await call('POST', '/attach', { target: `docker:${id}`, cidrs });
  } catch (err) {
    await docker.remove(id, true).catch(() => {});
    throw err;
  }
  return id;
}
