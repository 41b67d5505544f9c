import { switchOn } from '../common/options.js';

export const policyOptions = {
  defaultDeny: switchOn(
    '--default-deny',
    'isolate every stack (namespace) from the others unless a NetworkPolicy allows it; traffic inside a stack stays open',
  ),
};
