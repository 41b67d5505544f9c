import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { dockerOk, launchAll, report, waitForMesh, weave, weaveOk } from '../lab/weave.js';
import { labHttp } from './fixtures/lab-http.js';
import { NftFirewall } from '../firewall/firewall.js';
import { compile, SECTION } from '../policy/compile.js';
import type { Pod } from '../policy/model.js';
import { parsePolicies } from '../policy/parse.js';

const WEB = ['sh', '-c', 'echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www'];
const HOSTS = ['h1', 'h2'];

/** Only the web pods of the shop namespace are isolated: clients of the shop reach them on port 80. */
const POLICY = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: shop
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - from:
    - podSelector:
        matchLabels: {app: client}
    ports:
    - protocol: TCP
      port: 80
`;
/** The same, and the default namespace's pods too (a second rule). */
const WIDER = `${POLICY}  - from:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: default}
    ports:
    - port: 80
`;

for (const datapath of ['fastdp', 'sleeve', 'sleeve-pcap'])
  describe(`NetworkPolicy on the overlay (${datapath}): two hosts, a namespace of web and client containers, intruders outside it`, function () {
    this.timeout(240_000);
    let lab: Lab;
    const ip = new Map<string, string>();
    const dir = mkdtempSync(join(tmpdir(), 'weave-policy-'));
    const file = (name: string, text: string) => {
      const f = join(dir, name);
      writeFileSync(f, text);
      return f;
    };

    after(async () => {
      await lab?.down();
    });

    before(async () => {
      lab = await Lab.create({ hosts: 2 });
      await Promise.all(HOSTS.map((h) => lab.startDockerd(h)));
      await launchAll(lab, HOSTS, ['--datapath', datapath]);
      await waitForMesh(lab);
      for (const h of HOSTS) assert.equal((await report(lab, h)).datapath, datapath);
      for (const [i, h] of HOSTS.entries()) {
        const n = i + 1;
        const shop = ['-l', 'weave.namespace=shop'];
        await weaveOk(lab, h, [
          'run',
          '-d',
          '--name',
          `web${n}`,
          '-h',
          `web${n}`,
          ...shop,
          '-l',
          'app=web',
          'busybox',
          ...WEB,
        ]);
        await weaveOk(lab, h, [
          'run',
          '-d',
          '--name',
          `client${n}`,
          ...shop,
          '-l',
          'app=client',
          'busybox',
          'sleep',
          '3600',
        ]);
        await weaveOk(lab, h, ['run', '-d', '--name', `intruder${n}`, '-l', 'app=client', 'busybox', 'sleep', '3600']);
        for (const c of [`web${n}`, `client${n}`, `intruder${n}`]) {
          const line = (await weaveOk(lab, h, ['ps', c])).trim();
          ip.set(c, line.split(' ')[2].split('/')[0]);
        }
      }
    });

    const hostOf = (c: string) => `h${c.slice(-1)}`;
    /** Whether `from` fetches web page `to` (a denied one times out: SYNs dropped). */
    const fetches = async (from: string, to: string): Promise<boolean> => {
      const r = await lab.exec(
        hostOf(from),
        ['docker', 'exec', from, 'timeout', '3', 'wget', '-qO-', `http://${ip.get(to)}/`],
        { env: { DOCKER_HOST: `unix://${lab.host(hostOf(from)).dataDir}/docker.sock` }, timeoutMs: 10_000 },
      );
      if (r.code === 0) assert.equal(r.stdout, `hello from ${to}\n`);
      return r.code === 0;
    };
    const nftHas = async (h: string, text: string) =>
      (await lab.execOk(h, ['/usr/sbin/nft', 'list', 'table', 'inet', 'weave'])).includes(text);
    /** Applies a policy file on h1 and polls every host's kernel for `text`: the ms until the last has it. */
    const timed = async (cmd: string[], text: string, present: boolean): Promise<number> => {
      const t0 = Date.now();
      await weaveOk(lab, 'h1', cmd);
      const answered = Date.now();
      let last = 0;
      await Promise.all(
        HOSTS.map(async (h) => {
          await waitFor(
            `${h}'s kernel ${present ? 'has' : 'lost'} ${text}`,
            async () => (await nftHas(h, text)) === present,
            5000,
            10,
          );
          last = Math.max(last, Date.now() - t0);
        }),
      );
      console.log(
        `      weave ${cmd.slice(0, 2).join(' ')} on h1: ${last} ms from the command's start to both kernels (the command itself took ${answered - t0} ms, h1's kernel has it before it returns)`,
      );
      return last;
    };

    it('everything is open before any policy', async () => {
      assert.ok(await fetches('intruder2', 'web1'));
      assert.ok(await fetches('client1', 'web2'));
    });

    it('a policy applied on h1 reaches both kernels in under 1 s; allowed flows connect, denied ones time out, on both hosts', async () => {
      // an established connection from an intruder, made while it was allowed, must survive the policy
      await dockerOk(lab, 'h1', ['exec', '-d', 'web1', 'sh', '-c', 'sleep 3600 | nc -l -p 9000 > /tmp/got']);
      await waitFor('web1 listens on 9000', async () =>
        (await dockerOk(lab, 'h1', ['exec', 'web1', 'netstat', '-ltn'])).includes(':9000'),
      );
      await dockerOk(lab, 'h2', [
        'exec',
        '-d',
        'intruder2',
        'sh',
        '-c',
        `while true; do echo tick; sleep 0.1; done | nc ${ip.get('web1')} 9000`,
      ]);
      const got = async () =>
        Number((await dockerOk(lab, 'h1', ['exec', 'web1', 'wc', '-c', '/tmp/got'])).trim().split(' ')[0]);
      await waitFor('the long connection carries data', async () => (await got()) > 0);

      const ms = await timed(['policy', 'apply', file('web.yaml', POLICY)], '"shop/web ingress[0]"', true);
      assert.ok(ms < 1000, `${ms} ms`);

      for (const [from, to] of [
        ['client1', 'web1'],
        ['client2', 'web1'],
        ['client1', 'web2'],
        ['client2', 'web2'],
      ])
        assert.ok(await fetches(from, to), `${from} → ${to} is allowed`);
      for (const [from, to] of [
        ['intruder1', 'web1'],
        ['intruder2', 'web1'],
        ['intruder1', 'web2'],
        ['web2', 'web1'],
      ])
        assert.ok(!(await fetches(from, to)), `${from} → ${to} is dropped`);
      // what is not selected stays open
      assert.ok((await fetches('web1', 'web2')) === false, 'web pods are isolated from each other too (not clients)');
      const before = await got();
      await waitFor('the established connection still carries data', async () => (await got()) > before + 20);
    });

    // What follows is the same kernel rules whatever carried the frames: once, on fastdp (the suite's time).
    if (datapath !== 'fastdp') return;

    it('counts the drops by policy and rule, in /metrics and the report', async () => {
      await waitFor('h1 counts drops', async () => {
        const r = await labHttp(lab, 'h1', 'http://127.0.0.1:6784/metrics');
        const m = /weave_policy_packets_total\{policy="shop\/web",rule="ingress drop",verdict="drop"\} (\d+)/.exec(
          r.body,
        );
        return m && Number(m[1]) > 0;
      });
      const r = (await report(lab, 'h2')) as unknown as { policy: { policies: { name: string; dropped: number }[] } };
      assert.ok(r.policy.policies.find((p) => p.name === 'shop/web')!.dropped > 0);
      assert.match(await weaveOk(lab, 'h1', ['policy', 'ls']), /shop\/web\s+Ingress\s+1\s+1\s+\d+/);
      // weave status (and the status page, which shows every section) has the drops by policy
      assert.match(await weaveOk(lab, 'h1', ['status']), /Dropped: .*shop\/web: [1-9]/);
    });

    it('weave policy why answers which rule allows or drops a flow', async () => {
      assert.match(
        await weaveOk(lab, 'h1', ['policy', 'why', 'client2', 'web1', '80']),
        /^allow: .*ingress allowed by shop\/web ingress\[0\]/,
      );
      assert.match(
        await weaveOk(lab, 'h2', ['policy', 'why', 'intruder2', ip.get('web1')!, '80/tcp']),
        /^drop: .*isolated by shop\/web/,
      );
      assert.match(await weaveOk(lab, 'h2', ['policy', 'why', 'client2', 'web1', '81']), /^drop:/);
      assert.match(
        await weaveOk(lab, 'h1', ['policy', 'why', 'web1', 'intruder2', '80']),
        /^open: no policy selects DST/,
      );
    });

    it('a bad policy is refused with the place, and what is in force stays', async () => {
      const bad = file(
        'bad.yaml',
        `${POLICY}---\n${POLICY.replace('port: 80', 'port: 70000').replace('name: web', 'name: other')}`,
      );
      const r = await weave(lab, 'h1', ['policy', 'apply', bad]);
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr.trim(),
        /bad\.yaml: document 2: spec\.ingress\[0\]\.ports\[0\]\.port: 70000 is not a port$/,
      );
      assert.ok(await nftHas('h2', '"shop/web ingress[0]"'));
      assert.ok(!(await fetches('intruder2', 'web1')));
    });

    it('a router that restarts leaves no window: the rule stays in the kernel throughout', async () => {
      const rule = '"shop/web ingress[0]"';
      const old = await report(lab, 'h1');
      let polling = true,
        polls = 0,
        missing = 0;
      const poller = (async () => {
        while (polling) {
          polls++;
          if (!(await nftHas('h1', rule))) missing++;
        }
      })();
      process.kill(old.pid, 'SIGKILL');
      await waitFor(
        "h1's router is back with web1 taken back",
        async () => {
          const r = (await report(lab, 'h1').catch(() => undefined)) as
            | (Awaited<ReturnType<typeof report>> & { policy: { policies: { name: string; selectedHere: number }[] } })
            | undefined;
          return r && r.pid !== old.pid && r.policy.policies.find((p) => p.name === 'shop/web')?.selectedHere === 1;
        },
        30_000,
      );
      polling = false;
      await poller;
      assert.equal(missing, 0, `the rule was missing in ${missing} of ${polls} looks`);
      assert.ok(polls > 5);
      assert.ok(!(await fetches('intruder2', 'web1')));
      assert.ok(await fetches('client2', 'web1'));
    });

    it('a container that starts isolated is covered before its first packet', async () => {
      const lock = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: locked, namespace: shop}
spec:
  podSelector: {matchLabels: {app: locked}}
  policyTypes: [Egress]
`;
      await weaveOk(lab, 'h1', ['policy', 'apply', file('locked.yaml', lock)]);
      const out = await weaveOk(lab, 'h2', [
        'run',
        '--name',
        'locked2',
        '-l',
        'weave.namespace=shop',
        '-l',
        'app=locked',
        'busybox',
        'sh',
        '-c',
        `timeout 2 wget -qO- http://${ip.get('web2')}/ >/dev/null 2>&1; echo rc=$?; sleep 3600`,
      ]);
      assert.match(out.trim(), /^[0-9a-f]{64}$/);
      const logs = await waitFor(
        'locked2 tried',
        async () => {
          const l = await dockerOk(lab, 'h2', ['logs', 'locked2']);
          return l.includes('rc=') && l;
        },
        15_000,
      );
      assert.match(logs, /rc=[1-9]/, 'its very first connection was dropped');
      await weaveOk(lab, 'h1', ['policy', 'rm', 'shop/locked']);
    });

    /** shop/web's drops on a host, from /metrics. */
    const dropped = async (h: string) => {
      const r = await labHttp(lab, h, 'http://127.0.0.1:6784/metrics');
      const m = /weave_policy_packets_total\{policy="shop\/web",rule="ingress drop",verdict="drop"\} (\d+)/.exec(
        r.body,
      );
      return m ? Number(m[1]) : 0;
    };

    it('a change (wider, then removed) applies within 1 s on all hosts; drop counts survive the rebuild', async () => {
      const before = await waitFor('h1 counted drops', async () => (await dropped('h1')) || undefined);
      const ms = await timed(['policy', 'apply', file('wider.yaml', WIDER)], '"shop/web ingress[1]"', true);
      assert.ok(ms < 1000, `${ms} ms`);
      assert.ok(await fetches('intruder2', 'web1'), 'the default namespace is allowed now');
      assert.ok(!(await fetches('web2', 'web1')));
      assert.ok((await dropped('h1')) > before, 'counted across the rebuild, and the new drop too');
      const rm = await timed(['policy', 'rm', 'shop/web'], '"shop/web', false);
      assert.ok(rm < 1000, `${rm} ms`);
      assert.ok(await fetches('web2', 'web1'), 'open again');
    });
  });

interface Replica {
  replica: string;
  nickname: string;
  address: string;
  state: string;
  stack: string;
}

describe('weave launch --default-deny: stacks isolated from each other, a manifest carrying the policy that lets one in', function () {
  this.timeout(300_000);
  let lab: Lab;
  const dir = mkdtempSync(join(tmpdir(), 'weave-policy-'));
  const file = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  const SHOP = `web:
  image: busybox:latest
  cmd: ${JSON.stringify(WEB)}
  replicas: 2
client:
  image: busybox:latest
  cmd: sleep 3600
  replicas: 1
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-ops}
spec:
  podSelector: {matchLabels: {service: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ops}}
      podSelector: {matchLabels: {service: client}}
    ports:
    - port: 80
`;
  const OPS = 'client:\n  image: busybox:latest\n  cmd: sleep 3600\n  replicas: 2\n';

  after(async () => {
    await lab?.down();
  });
  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await Promise.all(HOSTS.map((h) => lab.startDockerd(h)));
    await launchAll(lab, HOSTS, ['--default-deny']);
    await waitForMesh(lab);
  });

  const replicas = async (): Promise<Replica[]> =>
    (JSON.parse(await weaveOk(lab, 'h1', ['report'])) as { scheduler: { replicas: Replica[] } }).scheduler.replicas;
  const running = (n: number) =>
    waitFor(
      `${n} replicas running`,
      async () => {
        const rows = await replicas();
        return rows.length === n && rows.every((r) => r.state === 'running' && r.address) ? rows : undefined;
      },
      120_000,
      250,
    );
  /** Whether replica `from` (stack/service/index) fetches the page of the web at `ip`. */
  const fetches = async (from: Replica, ip: string) => {
    const h = from.nickname;
    const r = await lab.exec(
      h,
      ['docker', 'exec', from.replica.replace(/\//g, '_'), 'timeout', '3', 'wget', '-qO-', `http://${ip}/`],
      { env: { DOCKER_HOST: `unix://${lab.host(h).dataDir}/docker.sock` }, timeoutMs: 10_000 },
    );
    return r.code === 0;
  };

  it('same-stack traffic flows, the other stack reaches only what the manifest allows, and a stack rm takes its policy away', async () => {
    assert.match(await weaveOk(lab, 'h1', ['deploy', file('shop.yml', SHOP)]), /^shop: deployed \(3 replicas\)/);
    await weaveOk(lab, 'h2', ['deploy', file('ops.yml', OPS)]);
    const rows = await running(5);
    const one = (id: string) => rows.find((r) => r.replica === id)!;
    const web = [one('shop/web/1'), one('shop/web/2')];
    const shopClient = one('shop/client/1');
    const ops = [one('ops/client/1'), one('ops/client/2')];
    assert.match(await weaveOk(lab, 'h2', ['policy', 'ls']), /shop\/web-from-ops/);
    for (const w of web) {
      assert.ok(await fetches(shopClient, w.address), `${shopClient.replica} → ${w.replica}: same stack`);
      for (const o of ops)
        assert.ok(await fetches(o, w.address), `${o.replica} → ${w.replica}: the manifest allows it`);
    }
    // ops's replicas take nothing from shop (no policy lets shop into ops), and shop's client takes nothing from ops
    await dockerOk(lab, ops[0].nickname, [
      'exec',
      '-d',
      'ops_client_1',
      'sh',
      '-c',
      `mkdir -p /www; echo ops > /www/index.html; httpd -p 80 -h /www`,
    ]);
    assert.ok(!(await fetches(shopClient, ops[0].address)), 'shop → ops is dropped');
    assert.ok(await fetches(ops[1], ops[0].address), 'ops → ops flows');
    assert.match(
      await weaveOk(lab, 'h1', ['policy', 'why', shopClient.address, ops[0].address, '80']),
      /^drop: .*isolated by ops\/weave-default-deny/,
    );
    // a stack removed takes its policies with it
    await weaveOk(lab, 'h1', ['stack', 'rm', 'shop']);
    await waitFor(
      'shop/web-from-ops gone on h2',
      async () => !(await weaveOk(lab, 'h2', ['policy', 'ls'])).includes('web-from-ops'),
    );
  });
});

describe("the firewall's policy section in a lab host's kernel", function () {
  this.timeout(60_000);
  let lab: Lab;
  let fw: NftFirewall;
  const nft = (args: string[]) => lab.execOk('h1', ['/usr/sbin/nft', ...args]);
  before(async () => {
    lab = await Lab.create({ hosts: 1 });
    fw = new NftFirewall(['ip', 'netns', 'exec', lab.host('h1').netns, '/usr/sbin/nft']);
  });
  after(async () => {
    await lab?.down();
  });

  it('replaces its own objects in one transaction, leaves the rest of the table and a refused body without effect', async () => {
    await nft(['add', 'table', 'inet', 'weave']);
    await nft(['add', 'chain', 'inet', 'weave', 'other_keep', '{ type filter hook input priority 0; policy accept; }']);
    const pods: Pod[] = [
      { ip: '10.32.0.1', namespace: 'shop', labels: { app: 'web' }, name: 'web' },
      { ip: '10.32.0.2', namespace: 'shop', labels: { app: 'client' }, name: 'client' },
    ];
    const [p] = parsePolicies(
      'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  - from:\n    - podSelector: {}\n    - ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}\n    ports: [{port: 80}, {protocol: UDP, port: 53, endPort: 60}, {protocol: SCTP}]\n  egress:\n  - {}\n',
      { file: 'p.yaml', namespace: 'default' },
    );
    const c = compile([p], pods, pods);
    await fw.replace(SECTION, c.body);
    let text = await nft(['list', 'table', 'inet', 'weave']);
    assert.match(text, /tcp dport 80 counter packets 0 bytes 0 accept comment "shop\/web ingress\[0\]"/);
    assert.match(text, /udp dport 53-60 /);
    assert.match(text, /10\.32\.0\.1-10\.32\.0\.2, 192\.168\.0\.0\/24,\s+192\.168\.2\.0-192\.168\.255\.255/);
    assert.doesNotMatch(text, /192\.168\.1\./, 'the except is cut out');
    assert.match(text, /chain other_keep/);
    // again, with fewer objects: the old ones are gone, not left beside
    await fw.replace(SECTION, compile([], pods, pods).body);
    text = await nft(['list', 'table', 'inet', 'weave']);
    assert.doesNotMatch(text, /policy_p0/);
    assert.match(text, /chain policy_forward/);
    // a body the kernel refuses: one line, and what was there stays
    await fw.replace(SECTION, c.body);
    await assert.rejects(
      fw.replace(SECTION, `${c.body}\n  chain policy_bad { ip saddr @policy_nosuch drop; }`),
      (err: Error) => !err.message.includes('\n') && /nft refused the policy section/.test(err.message),
    );
    assert.match(await nft(['list', 'table', 'inet', 'weave']), /comment "shop\/web ingress\[0\]"/);
    const listed = (await fw.list()) as { nftables: { chain?: { name: string } }[] };
    assert.ok(listed.nftables.some((o) => o.chain?.name === 'policy_ingress'));
  });
});
