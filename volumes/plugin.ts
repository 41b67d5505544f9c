// Docker's (legacy) volume plugin API: JSON over HTTP on a unix socket in Docker's plugin directory
// (/run/docker/plugins/weave.sock; a lab host's own directory). dockerd asks; the volume manager,
// behind PluginVolumes, answers. Errors go back as {"Err": "..."} with status 200, as the protocol
// wants: dockerd then shows the message itself (e.g. "VolumeDriver.Mount: <message>").
import type http from 'node:http';
import { type Body, type PluginHandlers, readPluginBody, servePluginSocket } from '../common/plugin-socket.js';

export interface PluginVolumes {
  create(name: string, opts: Record<string, string>): Promise<void>;
  remove(name: string): Promise<void>;
  /**
   * Makes the volume available here (moving it here first if another host holds it); its directory. `id` is Docker's
   * mount id.
   */
  mount(name: string, id: string): Promise<string>;
  unmount(name: string, id: string): Promise<void>;
  /** The directory when mounted here, else undefined. */
  path(name: string): string | undefined;
  get(name: string): { name: string; mountpoint?: string; status?: Record<string, unknown> } | undefined;
  list(): { name: string; mountpoint?: string }[];
}

const str = (b: Body, key: string, optional = false): string => {
  const v = b[key];
  if (v === undefined || v === null) {
    if (optional) return '';
    throw new Error(`${key} is missing`);
  }
  if (typeof v !== 'string') throw new Error(`${key} must be a string`);
  if (!optional && v === '') throw new Error(`${key} is empty`);
  return v;
};

const opts = (b: Body): Record<string, string> => {
  const v = b.Opts;
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error('Opts must be an object');
  for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') throw new Error(`option ${k} must be a string`);
  return { ...(v as Record<string, string>) };
};

/** The endpoints; those whose request carries nothing ignore what the body says. */
const endpoints: Record<string, { args: boolean; run(v: PluginVolumes, b: Body): Promise<Body> | Body }> = {
  '/Plugin.Activate': { args: false, run: () => ({ Implements: ['VolumeDriver'] }) },
  '/VolumeDriver.Capabilities': { args: false, run: () => ({ Capabilities: { Scope: 'global' } }) },
  '/VolumeDriver.Create': {
    args: true,
    run: async (v, b) => {
      await v.create(str(b, 'Name'), opts(b));
      return { Err: '' };
    },
  },
  '/VolumeDriver.Remove': {
    args: true,
    run: async (v, b) => {
      await v.remove(str(b, 'Name'));
      return { Err: '' };
    },
  },
  '/VolumeDriver.Mount': {
    args: true,
    run: async (v, b) => ({ Mountpoint: await v.mount(str(b, 'Name'), str(b, 'ID', true)), Err: '' }),
  },
  '/VolumeDriver.Unmount': {
    args: true,
    run: async (v, b) => {
      await v.unmount(str(b, 'Name'), str(b, 'ID', true));
      return { Err: '' };
    },
  },
  '/VolumeDriver.Path': { args: true, run: (v, b) => ({ Mountpoint: v.path(str(b, 'Name')) ?? '', Err: '' }) },
  '/VolumeDriver.Get': {
    args: true,
    run: (v, b) => {
      const vol = v.get(str(b, 'Name'));
      if (!vol) return { Err: 'no such volume' };
      return { Volume: { Name: vol.name, Mountpoint: vol.mountpoint ?? '', Status: vol.status ?? {} }, Err: '' };
    },
  },
  '/VolumeDriver.List': {
    args: false,
    run: (v) => ({ Volumes: v.list().map((x) => ({ Name: x.name, Mountpoint: x.mountpoint ?? '' })), Err: '' }),
  },
};

/** The VolumeDriver calls as a table, for a socket that serves other interfaces too (the managed plugin's). */
export function volumeDriverHandlers(volumes: PluginVolumes): PluginHandlers {
  return Object.fromEntries(
    Object.entries(endpoints)
      .filter(([path]) => path.startsWith('/VolumeDriver.'))
      .map(([path, ep]) => [path, (b: Body) => ep.run(volumes, b)]),
  );
}

async function handle(volumes: PluginVolumes, req: http.IncomingMessage): Promise<[number, Body]> {
  const ep = Object.hasOwn(endpoints, req.url ?? '') ? endpoints[req.url!] : undefined;
  if (!ep) {
    req.resume();
    return [404, { Err: `unknown endpoint ${(req.url ?? '').slice(0, 60)}` }];
  }
  if (req.method !== 'POST') {
    req.resume();
    return [405, { Err: `${req.method} not allowed, use POST` }];
  }
  const body = ep.args ? await readPluginBody(req) : await readPluginBody(req).catch(() => ({}));
  return [200, await ep.run(volumes, body)];
}

export function servePlugin(socketPath: string, volumes: PluginVolumes): Promise<{ close(): Promise<void> }> {
  return servePluginSocket(
    socketPath,
    'volume plugin',
    (req) => handle(volumes, req),
    (message) => ({ Err: message }),
  );
}
