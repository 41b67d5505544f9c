import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { LabBrowser } from './fixtures/lab-browser.js';
import type { LabContainer } from '../lab/lab.js';
import { dockerOk, keepLogs, killHost, report, waitForMesh, weave, weaveOk } from '../lab/weave.js';

// Web servers that say which replica they are and where they run.
const WEB = `sh -c 'echo "$WEAVE_REPLICA $WEAVE_HOST" > /www/index.html && exec httpd -f -p 80 -h /www'`;
const manifest = (
  web: number,
  image = 'busybox:latest',
) => `# the seeds' stack: web servers half on Ubuntu, half on CentOS
web:
  image: ${image}
  cmd: ${WEB}
  replicas: ${web}
  spread: os
db:
  image: busybox:latest
  cmd: ${WEB}
  replicas: 2
  constraints: ["os==centos"]
`;

interface Row {
  replica: string;
  host: string;
  nickname: string;
  address: string;
  state: string;
}

describe('the scheduler: a stack deployed across four hosts with a dockerd each (and one without), re-placed when a host dies, addresses kept', function () {
  this.timeout(600_000);
  let lab: Lab;
  let client: LabContainer;
  const names = new Map<string, string>();
  after(async () => {
    if (lab) await keepLogs(lab);
    await lab?.down();
  });

  before(async () => {
    // h5 has no Docker engine: a member of the cluster that is placed nothing.
    lab = await Lab.create({ hosts: 5 });
    await Promise.all(['h1', 'h2', 'h3', 'h4'].map((h) => lab.startDockerd(h)));
    const os = { h1: 'ubuntu', h2: 'ubuntu', h3: 'centos', h4: 'centos', h5: 'ubuntu' } as Record<string, string>;
    const first = lab.host('h1').addrs[0];
    for (const h of ['h1', 'h2', 'h3', 'h4', 'h5'])
      names.set(
        h,
        (
          await weaveOk(lab, h, ['launch', '--nickname', h, '--label', `os=${os[h]}`, ...(h === 'h1' ? [] : [first])])
        ).trim(),
      );
    await waitForMesh(lab);
    client = await lab.addContainer('h2', 'client');
    await weaveOk(lab, 'h2', ['attach', 'net:default', `netns:${client.netns}`]);
  });

  const file = (text: string, name = 'shop.yml') => {
    const f = join(lab.host('h1').dataDir, name);
    writeFileSync(f, text);
    return f;
  };
  const ps = async (host: string, stack = 'shop'): Promise<Row[]> =>
    (
      JSON.parse(await weaveOk(lab, host, ['report'])) as { scheduler: { replicas: (Row & { stack: string })[] } }
    ).scheduler.replicas.filter((r) => r.stack === stack);
  const fetchFrom = async (netns: string, ip: string, timeoutS = 3) =>
    (await lab.execIn(netns, ['timeout', String(timeoutS), 'busybox', 'wget', '-qO-', `http://${ip}/`])).stdout.trim();
  const allRunning = (n: number, host = 'h2') =>
    waitFor(
      `${n} replicas running`,
      async () => {
        const rows = await ps(host);
        return rows.length === n && rows.every((r) => r.state === 'running' && r.address) ? rows : undefined;
      },
      120_000,
      250,
    );
  /** Kills a host's router (not its supervisor, which starts it again) and waits until the new one answers. */
  const restartRouter = async (host: string) => {
    const old = await report(lab, host);
    process.kill(old.pid, 'SIGKILL');
    await waitFor(
      `${host}'s router is back`,
      async () => {
        const r = await report(lab, host).catch(() => undefined);
        return r && r.pid !== old.pid;
      },
      30_000,
    );
  };
  const containers = async (h: string) =>
    (await dockerOk(lab, h, ['ps', '-q', '--filter', 'label=weave.replica'])).split('\n').filter(Boolean).sort();
  /** The replica containers running on each engine (h1..h4). */
  const everyEngine = () => Promise.all(['h1', 'h2', 'h3', 'h4'].map(containers));

  it('lands 20 web servers 10/10 over os and the db only on centos; every replica answers at its address', async () => {
    // Deployed from h3, the host that dies later: the stack lives in every router, not where it was deployed.
    const out = await weaveOk(lab, 'h3', ['deploy', file(manifest(20))]);
    assert.match(out, /^shop: deployed \(22 replicas\)/);
    const rows = await allRunning(22);
    const osOf = (h: string) => (['h1', 'h2'].includes(h) ? 'ubuntu' : 'centos');
    const hostOf = new Map([...names].map(([h, n]) => [n, h]));
    const web = rows.filter((r) => r.replica.startsWith('shop/web/'));
    assert.equal(web.filter((r) => osOf(hostOf.get(r.host)!) === 'ubuntu').length, 10);
    assert.equal(web.filter((r) => osOf(hostOf.get(r.host)!) === 'centos').length, 10);
    assert.ok(
      rows.filter((r) => r.replica.startsWith('shop/db/')).every((r) => osOf(hostOf.get(r.host)!) === 'centos'),
      'db only on centos hosts',
    );
    assert.equal(new Set(rows.map((r) => r.address)).size, 22, 'an address each');
    for (const r of rows) assert.equal(await fetchFrom(client.netns, r.address), `${r.replica} ${hostOf.get(r.host)}`);
    const text = await weaveOk(lab, 'h3', ['stack', 'ps', 'shop']);
    assert.match(text, /^REPLICA\s+HOST\s+ADDRESS\s+STATE\s+SINCE\n/);
    assert.equal(text.trim().split('\n').length, 23);
    assert.match(await weaveOk(lab, 'h4', ['stack', 'ls']), /\nshop\s+2\s+22\s+22\n?$/);
    assert.match(await weaveOk(lab, 'h1', ['status']), /Stack shop: 22\/22 running: h1 \d+, h2 \d+, h3 \d+, h4 \d+/);
    assert.match(await weaveOk(lab, 'h5', ['status']), /Engine: runs no replicas: no Docker engine answers/);
    // DNS names each replica, and the service by all of them.
    const web3 = rows.find((r) => r.replica === 'shop/web/3')!;
    await waitFor(
      'web-3.shop in DNS',
      async () => (await weaveOk(lab, 'h4', ['dns-lookup', 'web-3.shop'])).trim() === web3.address,
      10_000,
    );
    assert.equal((await weaveOk(lab, 'h4', ['dns-lookup', 'web.shop'])).trim().split('\n').length, 20);
    assert.ok(
      rows.every((r) => r.host !== names.get('h5')),
      'nothing on the host without an engine',
    );
  });

  it('shows the stack and where its replicas run on the status page, in a real browser', async () => {
    const browser = new LabBrowser(lab, 'h1');
    try {
      await browser.open('http://127.0.0.1:6784/');
      const v = await waitFor(
        'the page shows the stack',
        async () => {
          const x = await browser.read();
          return x.services.scheduler?.['Stack shop'] ? x : undefined;
        },
        20_000,
      );
      assert.match(v.services.scheduler['Stack shop'], /^22\/22 running: h1 \d+, h2 \d+, h3 \d+, h4 \d+$/);
      assert.match(v.services.scheduler.Hosts, /^5 \(5 reachable\)/);
      assert.deepEqual(v.errors, []);
    } finally {
      await browser.close();
    }
  });

  it('changes nothing when the same file is deployed again', async () => {
    const before = await everyEngine();
    assert.match(
      await weaveOk(lab, 'h2', ['deploy', '--name', 'shop', file(manifest(20), 'again.yml')]),
      /^shop: unchanged/,
    );
    await new Promise((r) => setTimeout(r, 2000)); // two reconcile rounds: nothing may have been restarted in them
    assert.deepEqual(await everyEngine(), before);
  });

  it('takes back the running replicas of a router that was killed and restarted: nothing restarts, nothing moves', async () => {
    const before = await everyEngine();
    await restartRouter('h2');
    const rows = await allRunning(22, 'h2');
    assert.deepEqual(await everyEngine(), before);
    for (const r of rows.filter((x) => x.host === names.get('h2')))
      assert.equal(await fetchFrom(client.netns, r.address), `${r.replica} h2`);
  });

  it('restarts a replica whose container died (restart: always), and leaves a finished one be (restart: no)', async () => {
    const [victim] = (await ps('h1')).filter((r) => r.replica.startsWith('shop/web/') && r.host === names.get('h1'));
    const id = (await dockerOk(lab, 'h1', ['ps', '-q', '--filter', `label=weave.replica=${victim.replica}`])).trim();
    await dockerOk(lab, 'h1', ['kill', id]);
    await waitFor(
      `${victim.replica} answers again`,
      async () =>
        (await fetchFrom(client.netns, victim.address, 1)) === `${victim.replica} h1` &&
        (await dockerOk(lab, 'h1', ['ps', '-q', '--filter', `label=weave.replica=${victim.replica}`])).trim() !== id,
      20_000,
    );
    await weaveOk(lab, 'h1', [
      'deploy',
      file('once:\n  image: busybox:latest\n  cmd: exit 3\n  restart: "no"\n', 'jobs.yml'),
    ]);
    const row = await waitFor(
      'the job ran',
      async () => (await ps('h1', 'jobs')).find((r) => r.state === 'exited'),
      20_000,
    );
    assert.match(JSON.stringify(row), /exit code 3/);
    await weaveOk(lab, 'h1', ['stack', 'rm', 'jobs']);
  });

  it('refuses bad manifests with one line naming the place, and changes nothing', async () => {
    const cases: [string, RegExp][] = [
      ['web:\n  image: busybox\n  replicas: [1\n', /^weave: .*bad\.yml:\d+:\d+: /],
      ['web:\n  image: busybox\n  imagee: x\n', /^weave: .*bad\.yml:3:3: .*unknown key "imagee"/],
      ['web:\n  image: busybox\n  replicas: -1\n', /^weave: .*bad\.yml:3:13: .*replicas: must be >= 0/],
      ['web:\n  image: busybox\n  constraints: ["os==solaris"]\n', /^weave: .*service web: no host has os==solaris/],
    ];
    for (const [text, expected] of cases) {
      const r = await weave(lab, 'h1', ['deploy', '--name', 'shop', file(text, 'bad.yml')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, expected);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.equal((await ps('h3')).length, 22);
  });

  it('scales down, releasing the addresses of the replicas gone, and up again', async () => {
    const gone = (await ps('h1')).filter((r) => /^shop\/web\/(1[7-9]|20)$/.test(r.replica));
    const kept = (await everyEngine()).flat().length - gone.length;
    await weaveOk(lab, 'h1', ['deploy', file(manifest(16))]);
    await allRunning(18);
    await waitFor(
      'the addresses of web 17..20 released everywhere',
      async () => {
        const reports = await Promise.all(['h1', 'h2', 'h3', 'h4'].map((h) => report(lab, h)));
        return reports.every(
          (x) =>
            !x.ipam.allocations.some((a) => gone.some((g) => g.replica === a.container || g.address === a.address)),
        );
      },
      15_000,
    );
    const survivors = (await everyEngine()).flat();
    assert.equal(survivors.length, kept);
    await weaveOk(lab, 'h1', ['deploy', file(manifest(20))]);
    await allRunning(22);
    const now = new Set((await everyEngine()).flat());
    assert.ok(
      survivors.every((id) => now.has(id)),
      'scaling restarted no replica that stayed',
    );
  });

  it('rolls an image change over the replicas one at a time, each keeping its address', async () => {
    await Promise.all(['h1', 'h2', 'h3', 'h4'].map((h) => dockerOk(lab, h, ['tag', 'busybox:latest', 'busybox:v2'])));
    const before = await ps('h1');
    const dbIds = (
      await Promise.all(['h3', 'h4'].map((h) => dockerOk(lab, h, ['ps', '-q', '--filter', 'label=weave.service=db'])))
    ).join('');
    const since = String(Math.floor(Date.now() / 1000) - 1);
    await weaveOk(lab, 'h1', ['deploy', file(manifest(20, 'busybox:v2'))]);
    // What runs, from the engines themselves: a replica between its old container and its new one has none.
    const images = async () =>
      (
        await Promise.all(
          ['h1', 'h2', 'h3', 'h4'].map((h) =>
            dockerOk(lab, h, ['ps', '--filter', 'label=weave.service=web', '--format', '{{.Image}}']),
          ),
        )
      )
        .join('')
        .split('\n')
        .filter(Boolean);
    await waitFor(
      'every web server runs busybox:v2',
      async () => {
        const now = await images();
        return now.length === 20 && now.every((i) => i === 'busybox:v2');
      },
      120_000,
    );
    // How many ran at the worst moment, from the engines' own event times (one clock: the lab's hosts share the
    // machine's): four engines asked one after another are never one snapshot.
    const until = String(Math.ceil(Date.now() / 1000) + 1);
    const events = (
      await Promise.all(
        ['h1', 'h2', 'h3', 'h4'].map((h) =>
          dockerOk(lab, h, [
            'events',
            ...['--since', since, '--until', until, '--filter', 'type=container'],
            ...['--filter', 'label=weave.service=web', '--format', '{{.TimeNano}} {{.Action}}'],
          ]),
        ),
      )
    )
      .join('')
      .split('\n')
      .map((l) => l.split(' '))
      .filter(([, action]) => action === 'start' || action === 'die')
      .sort(([a], [b]) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
    let running = 20;
    let fewest = 20;
    for (const [, action] of events) fewest = Math.min(fewest, (running += action === 'start' ? 1 : -1));
    assert.ok(events.length >= 40, `a die and a start for each of 20 replicas: ${events.length} events`);
    console.log(`      (at least ${fewest} of 20 web servers running at every moment of the roll)`);
    assert.ok(fewest >= 19, `only ${fewest} web servers were running at one point`);
    const after = await allRunning(22);
    for (const r of before)
      assert.equal(after.find((x) => x.replica === r.replica)?.address, r.address, `${r.replica} kept its address`);
    assert.equal(
      (
        await Promise.all(['h3', 'h4'].map((h) => dockerOk(lab, h, ['ps', '-q', '--filter', 'label=weave.service=db'])))
      ).join(''),
      dbIds,
      'the db was not touched',
    );
  });

  it('places the replicas of a killed host (the one the stack was deployed from) elsewhere with the same addresses, answering within 15 s', async () => {
    const before = await ps('h1');
    const victims = before.filter((r) => r.host === names.get('h3'));
    assert.ok(victims.length > 0);
    await killHost(lab, 'h3');
    const t0 = Date.now();
    const answered = new Map<string, number>();
    await waitFor(
      'every replica of h3 answers from elsewhere at its address',
      async () => {
        for (const v of victims) {
          if (answered.has(v.replica)) continue;
          const body = await fetchFrom(client.netns, v.address);
          if (body.startsWith(`${v.replica} `) && !body.endsWith(' h3')) answered.set(v.replica, Date.now() - t0);
        }
        return answered.size === victims.length;
      },
      60_000,
      200,
    );
    const times = [...answered.values()].sort((a, b) => a - b);
    console.log(`      (${victims.length} replicas of h3 answered again after ${times[0]}..${times.at(-1)} ms)`);
    assert.ok(times.at(-1)! < 15_000, `the last replica answered after ${times.at(-1)} ms`);
    const after = await allRunning(22);
    for (const v of victims) assert.equal(after.find((r) => r.replica === v.replica)?.address, v.address);
    assert.ok(after.every((r) => r.host !== names.get('h3')));
  });

  it('fences a host cut off from the majority before its replicas start elsewhere, and takes it back when it returns', async () => {
    // h3 is dead: h4 is the only centos host, so its web servers move to ubuntu and the db (centos only) cannot be
    // placed.
    const onH4 = (await ps('h1')).filter((r) => r.host === names.get('h4'));
    const isolated = onH4.filter((r) => r.replica.startsWith('shop/web/'));
    assert.ok(isolated.length > 0 && onH4.some((r) => r.replica.startsWith('shop/db/')));
    const inside = await lab.addContainer('h4', 'probe');
    await weaveOk(lab, 'h4', ['attach', 'net:default', `netns:${inside.netns}`]);
    for (const v of isolated.slice(0, 1))
      await waitFor(
        "the probe reaches h4's replica",
        async () => (await fetchFrom(inside.netns, v.address)) !== '',
        10_000,
      );
    await lab.execOk('h4', ['ip', 'link', 'set', 'eth0', 'down']);
    const t0 = Date.now();
    const overlaps: string[] = [];
    let fencedAt = 0,
      movedAt = 0;
    // Both sides, over and over: an address answering on h4's side and on the majority's at once would be live twice.
    await waitFor(
      'every replica of h4 answers on the majority side',
      async () => {
        const answers = await Promise.all(
          isolated.map((v) =>
            Promise.all([fetchFrom(inside.netns, v.address, 1), fetchFrom(client.netns, v.address, 1)]),
          ),
        );
        const at = Date.now() - t0;
        answers.forEach(([mine, theirs], i) => {
          if (mine && theirs) overlaps.push(`${isolated[i].address}: "${mine}" and "${theirs}" at ${at} ms`);
        });
        if (!fencedAt && answers.every(([mine]) => !mine)) fencedAt = at;
        const moved = answers.filter(([, theirs]) => theirs && !theirs.endsWith(' h4')).length;
        if (moved === isolated.length) movedAt = at;
        return moved === isolated.length;
      },
      90_000,
      100,
    );
    console.log(
      `      (h4 stopped its replicas ${fencedAt} ms after its link went down; they all answered on the majority side after ${movedAt} ms)`,
    );
    assert.deepEqual(overlaps, []);
    assert.ok(((await report(lab, 'h4')) as unknown as { scheduler: { fenced: boolean } }).scheduler.fenced);
    // Its router restarted while still cut off knows the cluster from its disk: a minority, it starts nothing.
    await restartRouter('h4');
    await waitFor(
      'h4 knows it is cut off',
      async () =>
        ((await report(lab, 'h4')) as unknown as { scheduler: { quorum: boolean } }).scheduler.quorum === false,
      10_000,
    );
    assert.deepEqual(await containers('h4'), [], 'no replica runs on the minority side');
    assert.deepEqual(
      (await ps('h1')).filter((r) => r.replica.startsWith('shop/db/')).map((r) => r.state),
      ['unplaced', 'unplaced'],
    );
    await lab.execOk('h4', ['ip', 'link', 'set', 'eth0', 'up']);
    await waitFor(
      'h4 is a member again with its share',
      async () => {
        const rows = await ps('h1');
        return (
          rows.length === 22 && rows.every((r) => r.state === 'running') && rows.some((r) => r.host === names.get('h4'))
        );
      },
      90_000,
      250,
    );
    const rows = await allRunning(22, 'h4');
    for (const r of rows) {
      const want = `${r.replica} ${[...names].find(([, n]) => n === r.host)![0]}`;
      await waitFor(
        `${r.replica} answers from ${want.split(' ')[1]}`,
        async () => (await fetchFrom(client.netns, r.address, 1)) === want,
        15_000, // a replica started again on h4 as it rejoined: its new MAC is learnt by every host first
      );
    }
  });

  it('removes a stack: every replica stops and every address is released', async () => {
    await weaveOk(lab, 'h2', ['stack', 'rm', 'shop']);
    for (const h of ['h1', 'h2', 'h4'])
      await waitFor(`${h} runs no replica`, async () => (await containers(h)).length === 0, 30_000);
    await waitFor(
      'no replica address is allocated',
      async () => {
        for (const h of ['h1', 'h2', 'h4'])
          if ((await report(lab, h)).ipam.allocations.some((a) => a.container.startsWith('shop/'))) return false;
        return true;
      },
      30_000,
    );
    assert.match((await weave(lab, 'h1', ['stack', 'ps', 'shop'])).stderr, /no stack "shop" is deployed/);
  });
});
