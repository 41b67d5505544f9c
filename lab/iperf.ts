import { type Lab, waitFor } from './lab.js';

/** What the tests and benches read of iperf3's JSON report. */
export interface IperfEnd {
  sum_received: { bits_per_second: number; bytes: number };
  sum_sent: { retransmits: number };
}

/**
 * A TCP stream with iperf3 from one namespace to a server it starts in another. Readiness: the
 * client is run again while the server is not listening yet (or busy); any other failure throws.
 * wrap runs around each client run (the bench measures CPU there).
 */
export async function iperf(
  lab: Lab,
  clientNs: string,
  serverNs: string,
  serverIp: string,
  o: { seconds?: number; wrap?: <T>(run: () => Promise<T>) => Promise<T> } = {},
): Promise<IperfEnd> {
  const seconds = o.seconds ?? 2;
  const wrap = o.wrap ?? ((run) => run());
  const server = lab.spawnIn(serverNs, ['iperf3', '-s', '-1'], { stdio: 'ignore' });
  try {
    const r = await waitFor(
      `iperf3 server at ${serverIp}`,
      async () => {
        const res = await wrap(() =>
          lab.execIn(clientNs, ['iperf3', '-c', serverIp, '-t', String(seconds), '-J'], {
            timeoutMs: (seconds + 30) * 1000,
          }),
        );
        return /unable to connect|connection refused|server is busy/i.test(res.stdout + res.stderr) ? undefined : res;
      },
      20_000,
      100,
    );
    if (r.code !== 0)
      throw new Error(
        `iperf3 to ${serverIp} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim().slice(0, 500)}`,
      );
    return (JSON.parse(r.stdout) as { end: IperfEnd }).end;
  } finally {
    server.kill();
  }
}
