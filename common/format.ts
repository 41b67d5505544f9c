/** A peer as Weave prints it: name(nickname). */
export const peerName = (name: string, nickname?: string): string => (nickname ? `${name}(${nickname})` : name);

/** Bytes as a person reads them: 812 B, 4.2 MiB, 1.0 GiB. */
export const formatBytes = (n: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
};
