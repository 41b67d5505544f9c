import { readFileSync } from 'node:fs';

const ARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
};

/**
 * The host's own labels: `os` (os-release's ID: debian, ubuntu, centos) and `arch` (Docker's names); labels given at
 * launch win.
 */
export function hostLabels(given: Record<string, string>, osRelease = '/etc/os-release'): Record<string, string> {
  let os = 'linux';
  try {
    os = /^ID="?([^"\n]+)"?$/m.exec(readFileSync(osRelease, 'utf8'))?.[1] ?? os;
  } catch {
    /* no os-release: plain linux */
  }
  return { os, arch: ARCH[process.arch] ?? process.arch, ...given };
}
