import { switchOff } from '../common/options.js';

export const firewallOptions = {
  masquerade: switchOff(
    '--no-masquerade',
    "do not masquerade containers' traffic that leaves the overlay (they then reach only the overlay)",
  ),
};
