import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { isIPv4 } from '../../common/cidr.js';
import { extend, switchOff, text } from '../../common/options.js';

/** The proxy on TCP: loopback unless an address is given (the Docker API is root on this host). */
function proxyTcp(v: string): string {
  const m = /^(?:(\d+\.\d+\.\d+\.\d+):)?(\d+)$/.exec(v);
  if (!m || (m[1] !== undefined && !isIPv4(m[1])) || !(Number(m[2]) > 0 && Number(m[2]) < 65536))
    throw new Error(`invalid --proxy-tcp "${v}": expected PORT or IPv4:PORT`);
  return `${m[1] ?? '127.0.0.1'}:${m[2]}`;
}

export const proxyOptions = {
  proxy: switchOff('--no-proxy', 'do not start the Docker API proxy (weave env)'),
  proxyTcp: extend(
    text('--proxy-tcp <[ip:]port>', 'also serve the Docker API proxy on TCP (default IP 127.0.0.1)', {
      check: proxyTcp,
    }),
    {
      check: (v: string, cfg) => {
        const port = Number(v.split(':')[1]);
        if (v === cfg.httpAddr || port === cfg.port)
          throw new Error(
            `--proxy-tcp ${v} is the router's own ${port === cfg.port ? 'control port' : 'HTTP API address'}: pick another port`,
          );
      },
    },
  ),
  proxyAdapters: text('--proxy-adapters <file>', 'Powerstrip-style adapters for the Docker API proxy (YAML)', {
    check: (v) => {
      const file = resolve(v);
      if (!existsSync(file)) throw new Error(`--proxy-adapters: no such file ${file}`);
      return file;
    },
  }),
};
