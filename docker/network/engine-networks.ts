// The Engine API's networks, as the plugin reads and makes them (only the fields we read).
import type { DockerClient } from '../client.js';

export interface NetworkInfo {
  Id: string;
  Name: string;
  Driver: string;
  Containers?: Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string }>;
}

const q = (filters: Record<string, string[]>) => `filters=${encodeURIComponent(JSON.stringify(filters))}`;

/** The networks of a driver, each inspected (a listing leaves out their containers). */
export async function networksOf(docker: DockerClient, driver: string): Promise<NetworkInfo[]> {
  const list = await docker.request<NetworkInfo[]>('GET', `/networks?${q({ driver: [driver] })}`);
  return Promise.all(list.map((n) => docker.request<NetworkInfo>('GET', `/networks/${encodeURIComponent(n.Id)}`)));
}

/** The network of that exact name (the API's name filter matches parts of names too). */
export async function networkNamed(docker: DockerClient, name: string): Promise<NetworkInfo | undefined> {
  const list = await docker.request<NetworkInfo[]>('GET', `/networks?${q({ name: [name] })}`);
  return list.find((n) => n.Name === name);
}

export async function createNetwork(docker: DockerClient, name: string, driver: string, subnet: string): Promise<void> {
  await docker.request('POST', '/networks/create', {
    Name: name,
    CheckDuplicate: true,
    Driver: driver,
    IPAM: { Driver: driver, Config: [{ Subnet: subnet }] },
  });
}
