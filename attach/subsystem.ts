import { route } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import type { Attachments } from './attachments.js';
import { log } from '../common/log.js';

/** attach, detach, ps, expose, hide over the API. */
export function attachmentsSubsystem(a: Attachments): Subsystem {
  return {
    name: 'attachments',
    routes: [
      route({
        method: 'POST',
        path: '/attach',
        body: { target: 'string', cidrs: 'string[]?', mac: 'string?' },
        handle: ({ body }) => a.attach(body),
      }),
      route({
        method: 'POST',
        path: '/detach',
        body: { target: 'string' },
        handle: ({ body }) => a.detach(body.target),
      }),
      route({ method: 'POST', path: '/ps', body: { targets: 'string[]?' }, handle: ({ body }) => a.ps(body.targets) }),
      route({
        method: 'POST',
        path: '/expose',
        body: { cidrs: 'string[]?' },
        handle: ({ body }) => a.expose(body.cidrs),
      }),
      route({ method: 'POST', path: '/hide', handle: () => a.hide() }),
    ],
    start: async () => {
      const n = await a.restore();
      if (n) log.info(`took back ${n} attachments from before a restart`);
    },
  };
}
