import { type DockerClient, NoDockerEngine } from './client.js';

/** This host's running containers that mount a volume (none without an engine). */
export const volumeUsers = (docker: DockerClient, volume: string) =>
  docker.usersOf(volume).catch((err: Error) => {
    if (err instanceof NoDockerEngine) return [];
    throw err;
  });

/** Stops this host's running containers that mount a volume (a move's last increment needs it still). */
export async function stopVolumeUsers(docker: DockerClient, volume: string): Promise<void> {
  await Promise.all((await volumeUsers(docker, volume)).map((c) => docker.stop(c.Id, STOP_GRACE_S)));
}

/** How long a volume's user has to stop on SIGTERM before it is killed, when its volume moves away. */
const STOP_GRACE_S = 5;
