/** A peer as Weave prints it: name(nickname). */
export const peerName = (name: string, nickname?: string): string => (nickname ? `${name}(${nickname})` : name);
