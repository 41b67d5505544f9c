import type { Subsystem } from '../common/subsystem.js';

const row = (label: string, value: string | number) => `${label.padStart(15)}: ${value}`;

/** `weave status`: the version, then each subsystem's section in registration order, in Weave's shape. */
export function renderStatus(version: string, subsystems: readonly Subsystem[]): string {
  const lines = [row('Version', version), ''];
  for (const s of subsystems) {
    const sec = s.status?.();
    if (sec) lines.push(row('Service', sec.service), ...sec.rows.map(([k, v]) => row(k, v)), '');
  }
  return lines.join('\n');
}
