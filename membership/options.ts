import { seconds } from '../common/options.js';

export const membershipOptions = {
  hostTimeoutMs: seconds(
    '--host-timeout <seconds>',
    'how long a majority of hosts must have lost a host before its replicas are placed elsewhere',
    { min: 2, max: 3600, default: 10, what: 'host timeout' },
  ),
};
