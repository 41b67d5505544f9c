import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { dockerOk, keepLogs, killHost, report, waitForMesh, weave, weaveOk } from '../lab/weave.js';

interface VolumeView {
  name: string;
  owner: string;
  ownerNickname: string;
  mounted: number;
  copies: { nickname: string; gen: number }[];
}
interface Transfer {
  name: string;
  direction: string;
  bytes: number;
}

// A container that appends a numbered line every 10 ms, synced, and prints the number once it is on disk.
const APPEND = (ms: number) =>
  `trap "exit 0" TERM; i=0; [ -f /data/log ] && i=$(wc -l < /data/log); while :; do echo $i >> /data/log; sync; echo $i; i=$((i+1)); usleep ${ms}000; done`;
const RUN = ['run', '--volume-driver', 'weave'];

/** The lines of a log are 0, 1, 2, ... n-1, in order: its n. */
function contiguous(text: string): number {
  const lines = text.trim().split('\n');
  lines.forEach((l, i) => {
    assert.equal(l, String(i), `line ${i + 1} of ${lines.length}`);
  });
  return lines.length;
}

for (const kind of ['btrfs', 'dir'] as const) {
  describe(`volumes (${kind}): data that moves with its container, across three hosts with a dockerd each`, function () {
    this.timeout(600_000);
    let lab: Lab;
    const names = new Map<string, string>();
    let bigSum = '';
    after(async () => {
      if (lab) await keepLogs(lab);
      await lab?.down();
    });

    before(async () => {
      lab = await Lab.create({ hosts: 3 });
      await Promise.all(['h1', 'h2', 'h3'].map((h) => lab.startDockerd(h)));
      const first = lab.host('h1').addrs[0];
      for (const h of ['h1', 'h2', 'h3']) {
        // h3's btrfs pool is small: too small for the 200 MiB volume of the move tests.
        const pool =
          kind === 'btrfs' && h === 'h3' ? ['--volume-pool', `${join(lab.host(h).dataDir, 'small.img')}:128M`] : [];
        names.set(
          h,
          (
            await weaveOk(lab, h, [
              'launch',
              '--nickname',
              h,
              '--volume-backend',
              kind,
              '--host-timeout',
              '5',
              '--replicate-interval',
              '2',
              ...pool,
              ...(h === 'h1' ? [] : [first]),
            ])
          ).trim(),
        );
      }
      await waitForMesh(lab);
    });

    const volumes = async (host: string) =>
      (
        JSON.parse(await weaveOk(lab, host, ['report'])) as {
          volumes: { volumes: VolumeView[]; transfers: Transfer[] };
        }
      ).volumes;
    const ownerEverywhere = (volume: string, host: string) =>
      waitFor(
        `${volume} on ${host} as every host sees it`,
        async () => {
          for (const h of ['h1', 'h2', 'h3'])
            if ((await volumes(h)).volumes.find((v) => v.name === volume)?.ownerNickname !== host) return false;
          return true;
        },
        15_000,
      );
    const docker = (host: string, args: string[]) => dockerOk(lab, host, args);
    const md5 = async (host: string, volume: string) =>
      (await docker(host, [...RUN, '--rm', '-v', `${volume}:/data`, 'busybox', 'md5sum', '/data/blob'])).split(' ')[0];

    it('the Flocker demo: data written in a container on h1 is read by a container started on h2', async () => {
      await docker('h1', [
        ...RUN,
        '--rm',
        '-v',
        'flocker:/data',
        'busybox',
        'sh',
        '-c',
        'echo "hello from h1" > /data/greeting',
      ]);
      assert.match(
        await weaveOk(lab, 'h3', ['volume', 'ls']),
        /^VOLUME\s+HOST\s+COPIES\s+MOUNTED\s+REPLICATED\nflocker\s+h1\s+1\s+-\s+-/,
      );
      assert.equal(
        (await docker('h2', [...RUN, '--rm', '-v', 'flocker:/data', 'busybox', 'cat', '/data/greeting'])).trim(),
        'hello from h1',
      );
      await ownerEverywhere('flocker', 'h2');
      assert.match(
        await docker('h1', ['volume', 'ls']),
        /weave\s+flocker/,
        "h1's Docker lists it too (a global volume)",
      );
      const status = await weaveOk(lab, 'h2', ['status']);
      assert.match(status, new RegExp(`Pool: ${kind} /tmp/weave-lab/\\w+/h2/volumes`));
      assert.match(status, /Volumes: 1 \(1 here\)/);
      assert.equal(
        (JSON.parse(await weaveOk(lab, 'h3', ['volume', 'inspect', 'flocker'])) as VolumeView).ownerNickname,
        'h2',
      );
      // weave run mounts named volumes from weave as well.
      const id = (await weaveOk(lab, 'h3', ['run', '-v', 'flocker:/data', 'busybox', 'sleep', '600'])).trim();
      assert.equal((await docker('h3', ['exec', id, 'cat', '/data/greeting'])).trim(), 'hello from h1');
      await docker('h3', ['rm', '-f', id]);
    });

    it('moves a volume while its container appends a synced line every 10 ms: every line written before the stop is there, in order', async () => {
      await weaveOk(lab, 'h1', ['volume', 'create', 'log']);
      await docker('h1', [...RUN, '-d', '--name', 'appender', '-v', 'log:/data', 'busybox', 'sh', '-c', APPEND(10)]);
      await waitFor(
        '100 lines written',
        async () => (await docker('h1', ['logs', 'appender'])).trim().split('\n').length >= 100,
        30_000,
      );
      const out = await weaveOk(lab, 'h3', ['volume', 'move', 'log', 'h2']);
      assert.match(out, /^volume log moved to h2/);
      assert.equal(
        (await docker('h1', ['inspect', '-f', '{{.State.Running}}', 'appender'])).trim(),
        'false',
        'the move stopped the container',
      );
      const printed = (await docker('h1', ['logs', 'appender'])).trim().split('\n');
      const last = Number(printed.at(-1));
      const n = contiguous(await docker('h2', [...RUN, '--rm', '-v', 'log:/data', 'busybox', 'cat', '/data/log']));
      assert.ok(n >= last + 1, `${n} lines on h2, the container had synced ${last + 1}`);
      await ownerEverywhere('log', 'h2');
      // The container, started again on h2, carries on where it stopped.
      await docker('h1', ['rm', 'appender']);
      await docker('h2', [...RUN, '-d', '--name', 'appender', '-v', 'log:/data', 'busybox', 'sh', '-c', APPEND(10)]);
      await waitFor(
        'appending on h2',
        async () => Number((await docker('h2', ['logs', 'appender'])).trim().split('\n')[0]) === n,
        10_000,
      );
      assert.match(
        (await weave(lab, 'h1', ['volume', 'rm', 'log'])).stderr,
        /volume log is in use by a container on h2/,
      );
      await docker('h2', ['rm', '-f', 'appender']);
    });

    it("a move cut short by the source's or the destination's router dying leaves the data whole with one owner, and a retry completes", async () => {
      await weaveOk(lab, 'h1', ['volume', 'create', 'big']);
      for (const [from, to, victim] of [
        ['h1', 'h2', 'h1'],
        ['h2', 'h1', 'h1'],
      ]) {
        // 200 MiB written anew each time, so that the move has that much to send even as an increment.
        const sum = (bigSum = (
          await docker(from, [
            ...RUN,
            '--rm',
            '-v',
            'big:/data',
            'busybox',
            'sh',
            '-c',
            'dd if=/dev/urandom of=/data/blob bs=1M count=200 2>/dev/null && sync && md5sum /data/blob',
          ])
        ).split(' ')[0]);
        const moving = weave(lab, 'h3', ['volume', 'move', 'big', to]);
        await waitFor(
          `big on its way from ${from} to ${to}`,
          async () => ((await volumes(from)).transfers.find((t) => t.name === 'big')?.bytes ?? 0) > 0,
          30_000,
          20,
        );
        const old = await report(lab, victim);
        process.kill(old.pid, 'SIGKILL');
        // The move fails (or, when the kill came after the commit, has happened): either way one host
        // owns the volume, every host agrees which, its copy is whole, and asking again completes the move.
        await moving;
        await waitFor(
          `${victim}'s router is back`,
          async () => {
            const x = await report(lab, victim).catch(() => undefined);
            return x && x.pid !== old.pid;
          },
          30_000,
        );
        await waitForMesh(lab);
        const owner = await waitFor(
          'every host names the same owner',
          async () => {
            const seen = new Set(
              await Promise.all(
                ['h1', 'h2', 'h3'].map(
                  async (h) => (await volumes(h)).volumes.find((v) => v.name === 'big')?.ownerNickname,
                ),
              ),
            );
            return seen.size === 1 ? [...seen][0] : undefined;
          },
          15_000,
        );
        assert.ok(owner === from || owner === to, `owned by ${owner}`);
        assert.equal(await md5(owner, 'big'), sum, `whole on ${owner}`);
        assert.match(
          await weaveOk(lab, 'h3', ['volume', 'move', 'big', to]),
          owner === to ? /^volume big is on h\d already$/ : /^volume big moved to/,
        );
        await ownerEverywhere('big', to);
        assert.equal(await md5(to, 'big'), sum, `whole on ${to}`);
      }
    });

    it('refuses bad input in one line and changes nothing', async () => {
      const list = async () => (await volumes('h1')).volumes.map((v) => `${v.name} ${v.ownerNickname}`);
      const before = await list();
      for (const [args, message] of [
        [['volume', 'create', 'flocker'], /^weave: volume flocker exists already \(on h3\)$/],
        [['volume', 'create', 'bad/name'], /^weave: invalid volume name "bad\/name"/],
        [['volume', 'create', 'x', '--replicas', '0'], /^weave: invalid replicas 0: expected 1\.\.16$/],
        [['volume', 'rm', 'nosuch'], /^weave: no volume nosuch$/],
        [['volume', 'move', 'nosuch', 'h2'], /^weave: no volume nosuch$/],
        [['volume', 'move', 'flocker', 'h9'], /^weave: unknown host "h9"/],
        ...(kind === 'btrfs'
          ? [
              [
                ['volume', 'move', 'big', 'h3'],
                /^weave: no room for volume big on h3: it holds 200\.\d MiB, the pool has \d+\.\d MiB free$/,
              ],
            ]
          : []),
      ] as [string[], RegExp][]) {
        const r = await weave(lab, 'h1', args);
        assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr.trim(), message, `${args.join(' ')}: ${r.stderr}`);
        assert.equal(r.stderr.trim().split('\n').length, 1);
      }
      assert.deepEqual(await list(), before);
      assert.equal(await md5('h1', 'big'), bigSum, 'the volume that found no room is whole where it was');
    });

    it('a stateful service with 2 copies runs on after its host dies, with its data up to the last replication', async () => {
      const file = join(lab.host('h1').dataDir, 'db.yml');
      writeFileSync(
        file,
        `db:\n  image: busybox:latest\n  cmd: ${JSON.stringify(APPEND(50))}\n  volumes:\n    - name: data\n      path: /data\n      replicas: 2\n`,
      );
      await weaveOk(lab, 'h1', ['deploy', file]);
      const row = async (h: string) =>
        (
          JSON.parse(await weaveOk(lab, h, ['report'])) as {
            scheduler: { replicas: { replica: string; nickname: string; state: string }[] };
          }
        ).scheduler.replicas.find((r) => r.replica === 'db/db/1');
      const first = await waitFor(
        'db running',
        async () => {
          const r = await row('h2');
          return r?.state === 'running' ? r : undefined;
        },
        60_000,
      );
      const home = first.nickname;
      const id = (await docker(home, ['ps', '-q', '--filter', 'label=weave.replica=db/db/1'])).trim();
      await waitFor('40 lines', async () => (await docker(home, ['logs', id])).trim().split('\n').length >= 40, 30_000);
      const t0 = Date.now();
      const written = (await docker(home, ['logs', id])).trim().split('\n').length;
      // A copy newer than t0 holds at least `written` lines.
      await waitFor(
        'a copy replicated after that',
        async () =>
          (await volumes('h2')).volumes
            .find((v) => v.name === 'db_db_1_data')
            ?.copies.some((c) => c.nickname !== home && c.gen > t0),
        30_000,
      );
      await killHost(lab, home);
      const live = ['h1', 'h2', 'h3'].filter((h) => h !== home);
      const moved = await waitFor(
        'db running on another host',
        async () => {
          const r = await row(live[0]);
          return r?.state === 'running' && r.nickname !== home ? r : undefined;
        },
        60_000,
      ).catch(async (err: Error) => {
        throw new Error(
          `${err.message}\n${await weaveOk(lab, live[0], ['stack', 'ps', 'db'])}\n${await weaveOk(lab, live[0], ['volume', 'ls'])}`,
        );
      });
      const id2 = (await docker(moved.nickname, ['ps', '-q', '--filter', 'label=weave.replica=db/db/1'])).trim();
      const n = contiguous(await docker(moved.nickname, ['exec', id2, 'cat', '/data/log']));
      assert.ok(n >= written, `${n} lines after the promotion, ${written} were written before the last replication`);
      await waitFor(
        'still appending',
        async () => contiguous(await docker(moved.nickname, ['exec', id2, 'cat', '/data/log'])) > n,
        10_000,
      );
      assert.match(await weaveOk(lab, live[0], ['volume', 'ls']), new RegExp(`db_db_1_data\\s+${moved.nickname}\\s`));
    });
  });
}
