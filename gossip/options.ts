import { extend, int, switchOff, text } from '../common/options.js';
import { resolve } from 'node:path';
import { readPasswordFile } from '../common/password-file.js';

export const gossipOptions = {
  port: int('--port <port>', 'control plane TCP port', { min: 1, max: 65535, default: 6783, what: 'port' }),
  discovery: switchOff('--no-discovery', 'do not connect to the peers our peers know'),
  connLimit: int('--conn-limit <n>', 'most connections to other peers', {
    min: 1,
    max: 10000,
    default: 100,
    what: 'connection limit',
  }),
  password: extend(
    text(
      '--password <password>',
      'a private network: peers without it never join, and every frame between routers is encrypted (or set ' +
        'WEAVE_PASSWORD)',
      { env: 'WEAVE_PASSWORD' },
    ),
    { secret: true },
  ),
  passwordFile: extend(
    text(
      '--password-file <file>',
      'the password from a file only its owner may read (not on a command line), e.g. /etc/weave/password ' +
        '(or set WEAVE_PASSWORD_FILE)',
      { env: 'WEAVE_PASSWORD_FILE', check: (v) => resolve(v) },
    ),
    {
      check: (file, cfg) => {
        if (cfg.password !== undefined) throw new Error('give a password or a password file, not both');
        readPasswordFile(file);
      },
    },
  ),
};
