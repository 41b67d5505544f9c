/**
 * The CNI relay: the plugins (cni/weave-net.ts, native/cni/weave-net.c) pass each call to the router
 * as it came (POST /cni/exec) and print what it answers; the CNI logic is the router's (attach/cni/).
 * The C plugin has its own copy of what it needs from here: keep the two in step.
 */

/** The CNI versions spoken (VERSION answers them without the router). */
export const CNI_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** The CNI spec's error codes that the plugin gives. */
export const CNI_ERR = {
  incompatible: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnv: 4,
  io: 5,
  decode: 6,
  invalidConfig: 7,
  tryAgain: 11,
  notAvailable: 50,
  interfaceExists: 100,
  checkFailed: 101,
} as const;

/** VERSION's answer, which the plugins give without the router (a missing cniVersion reads as 0.3.1). */
export const versionAnswer = (version: unknown) => ({
  cniVersion: typeof version === 'string' && CNI_VERSIONS.includes(version) ? version : '1.1.0',
  supportedVersions: CNI_VERSIONS,
});

/** POST /cni/exec: the runtime's CNI_* environment (empty when unset) and the plugin's stdin, verbatim. */
export interface CniExecRequest {
  command: string;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string;
  stdin: string;
}

/** What the plugin prints and its exit status. */
export interface CniExecResult {
  exit: number;
  /** One line, or empty. */
  stderr: string;
  stdout: string;
}

/** The API's limit on a request body (api/body.ts): the plugins refuse a larger call before sending it. */
export const CNI_EXEC_MAX = 64 * 1024;

/**
 * /cni/exec's answer as text (what a client gets unless it accepts JSON): the exit status, a line,
 * the stderr line (empty when none), a line, then stdout's bytes to the end.
 */
export const cniExecText = (r: CniExecResult): string => `${r.exit}\n${r.stderr}\n${r.stdout}`;

/**
 * A CNI error as printed: the spec's JSON on stdout (in the config's version when it is one we speak),
 * a line on stderr, exit 1. The router's and the plugins' own (the router down, a call too large) alike.
 */
export function cniError(command: string, version: unknown, code: number, msg: string, details = ''): CniExecResult {
  const cniVersion = typeof version === 'string' && CNI_VERSIONS.includes(version) ? version : '1.1.0';
  return {
    exit: 1,
    stderr: `weave-net: ${command || 'no command'}: ${msg.replace(/\s*\n\s*/g, ' ')}`,
    stdout: `${JSON.stringify({ cniVersion, code, msg, ...(details ? { details } : {}) })}\n`,
  };
}
