import type { Subsystem } from '../common/subsystem.js';
import type { MembershipService } from './service.js';

/**
 * Membership as the router carries it: the hosts channel and its tick. What it knows is shown in the
 * scheduler's report, status and views (hosts, dead, quorum, fenced), where users have always seen it.
 */
export function membershipSubsystem(m: MembershipService): Subsystem {
  return {
    name: 'membership',
    channels: [m.channel],
    start: async () => m.start(),
    stop: async () => m.stop(),
  };
}
