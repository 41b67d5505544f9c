import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { dockerOk, launchAll, report, waitForMesh, weave, weaveOk } from '../lab/weave.js';

const SLEEP = ['sleep', '3600'];

describe('DNS: container names across hosts, gossiped, served on the bridge', function () {
  this.timeout(180_000);
  let lab: Lab;
  const resolvConf = (h: string) => join(lab.host(h).dataDir, 'resolv.conf');
  after(async () => {
    await lab?.down();
  });

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    for (const h of ['h1', 'h2']) writeFileSync(resolvConf(h), '# no upstream yet\n');
    await Promise.all(['h1', 'h2'].map((h) => lab.startDockerd(h)));
    await launchAll(lab, ['h1', 'h2'], ['--resolv-conf', resolvConf('h1')]);
    await waitForMesh(lab);
  });

  /** The router's own DNS address on a host: the bridge's overlay address (weave run gives it one). */
  const bridgeIp = async (h: string) =>
    (await weaveOk(lab, h, ['ps']))
      .split('\n')
      .find((l) => l.startsWith('weave:expose'))!
      .split(' ')[2]
      .split('/')[0];
  const dig = async (h: string, args: string[]) =>
    (await lab.execOk(h, ['dig', '+time=2', '+tries=1', ...args])).trim();
  const nslookup = async (h: string, container: string, name: string) => {
    const r = await lab.exec(h, ['docker', 'exec', container, 'nslookup', name], {
      env: { DOCKER_HOST: `unix://${lab.host(h).dataDir}/docker.sock` },
    });
    return [
      ...r.stdout
        .split(/Name:/)
        .slice(1)
        .join('')
        .matchAll(/Address(?: \d+)?:\s+(\d+\.\d+\.\d+\.\d+)/g),
    ]
      .map((m) => m[1])
      .sort();
  };
  const ipOf = async (h: string, name: string) => (await weaveOk(lab, h, ['ps', name])).split(' ')[2].split('/')[0];

  it('answers a name with three containers on two hosts with all three addresses, to containers on either host', async () => {
    for (const [h, name] of [
      ['h1', 'web1'],
      ['h1', 'web2'],
      ['h2', 'web3'],
    ])
      await weaveOk(lab, h, ['run', '-d', '--name', name, '-h', 'web', 'busybox', ...SLEEP]);
    await weaveOk(lab, 'h2', ['run', '-d', '--name', 'client', 'busybox', ...SLEEP]);
    const want = (
      await Promise.all(
        [
          ['h1', 'web1'],
          ['h1', 'web2'],
          ['h2', 'web3'],
        ].map(([h, n]) => ipOf(h, n)),
      )
    ).sort();
    const resolv = await dockerOk(lab, 'h2', ['exec', 'client', 'cat', '/etc/resolv.conf']);
    assert.match(
      resolv,
      new RegExp(`^nameserver ${(await bridgeIp('h2')).replace(/\./g, '\\.')}$`, 'm'),
      'the router is the resolver',
    );
    assert.match(resolv, /^search weave\.local$/m);
    await waitFor(
      'client resolves web to all three',
      async () => JSON.stringify(await nslookup('h2', 'client', 'web.weave.local')) === JSON.stringify(want),
    );
    assert.deepEqual(
      await nslookup('h2', 'client', 'web1.weave.local'),
      [await ipOf('h1', 'web1')],
      'and a container by its name',
    );
    const answer = await dig('h1', [`@${await bridgeIp('h1')}`, '+noall', '+answer', 'web.weave.local']);
    assert.equal(answer.split('\n').length, 3, answer);
    for (const line of answer.split('\n')) assert.match(line, /^web\.weave\.local\.\s+1\s+IN\s+A\s+10\./, 'TTL 1');
    assert.deepEqual(
      answer
        .split('\n')
        .map((l) => l.split(/\s+/).at(-1))
        .sort(),
      want,
    );
    const ptr = await dig('h1', [`@${await bridgeIp('h1')}`, '+short', '-x', await ipOf('h2', 'web3')]);
    assert.deepEqual(ptr.split('\n').sort(), ['web.weave.local.', 'web3.weave.local.']);
    assert.equal((await weaveOk(lab, 'h1', ['dns-lookup', 'web'])).trim().split('\n').sort().join(' '), want.join(' '));
    assert.match(await weaveOk(lab, 'h1', ['status', 'dns']), /^web3\.weave\.local\s+10\.\S+\s+\S+\(h2\)$/m);
    assert.match(
      await weaveOk(lab, 'h1', ['status']),
      /^\s+Service: dns\n\s+Domain: weave\.local\.\n\s+Listen: 10\.\S+:53\n/m,
    );
  });

  it('answers a name with 100 addresses in what each client can take: 512 bytes, its EDNS0 size, TCP', async () => {
    const want = Array.from({ length: 100 }, (_, i) => `10.99.0.${i + 1}`);
    await weaveOk(lab, 'h1', ['dns-add', ...want, '-h', 'big']);
    const server = `@${await bridgeIp('h2')}`;
    // From the client container on h2: dig and getent run in its network namespace, nslookup in it.
    const pid = (await dockerOk(lab, 'h2', ['inspect', '-f', '{{.State.Pid}}', 'client'])).trim();
    const inClient = ['nsenter', `--net=/proc/${pid}/ns/net`];
    const digClient = async (args: string[]) => {
      const out = await lab.execOk('h2', [
        ...inClient,
        'dig',
        '+time=2',
        '+tries=1',
        server,
        ...args,
        'big.weave.local',
      ]);
      return {
        out,
        tc: /^;; flags:[^;]* tc[ ;]/m.test(out),
        size: Number(/MSG SIZE\s+rcvd: (\d+)/.exec(out)?.[1]),
        addresses: [...out.matchAll(/^big\.weave\.local\.\s+1\s+IN\s+A\s+(\S+)$/gm)].map((m) => m[1]).sort(),
      };
    };
    const sorted = [...want].sort();
    await waitFor('h2 serves all 100', async () => (await digClient(['+tcp'])).addresses.length === 100);
    const plain = await digClient(['+noedns', '+ignore']);
    assert.ok(plain.tc && plain.size <= 512 && plain.addresses.length > 0, plain.out);
    assert.ok(
      plain.addresses.every((a) => want.includes(a)),
      plain.out,
    );
    const edns = await digClient(['+bufsize=4096', '+ignore']);
    assert.ok(!edns.tc && edns.size <= 4096, edns.out);
    assert.deepEqual(edns.addresses, sorted, 'all 100 in one EDNS0 datagram');
    assert.match(edns.out, /^; EDNS: version: 0, flags:; udp: 4096$/m, 'the OPT record echoed');
    assert.deepEqual((await digClient(['+tcp'])).addresses, sorted, 'all 100 over TCP');
    const busybox = await lab.exec('h2', ['docker', 'exec', 'client', 'nslookup', 'big.weave.local'], {
      env: { DOCKER_HOST: `unix://${lab.host('h2').dataDir}/docker.sock` },
    });
    assert.doesNotMatch(busybox.stdout + busybox.stderr, /Parse error/);
    const seen = await nslookup('h2', 'client', 'big.weave.local');
    assert.ok(seen.length > 0 && seen.every((a) => want.includes(a)), busybox.stdout + busybox.stderr);
    // glibc: the truncated UDP answer, then TCP for the whole (resolv.conf bind-mounted for getent only).
    const conf = join(lab.host('h2').dataDir, 'client-resolv.conf');
    writeFileSync(conf, `nameserver ${server.slice(1)}\n`);
    const getent = await lab.execOk('h2', [
      ...inClient,
      'unshare',
      '-m',
      'sh',
      '-c',
      `mount --bind ${conf} /etc/resolv.conf && getent ahosts big.weave.local`,
    ]);
    assert.deepEqual(
      [
        ...new Set(
          getent
            .split('\n')
            .filter(Boolean)
            .map((l) => l.split(/\s+/)[0]),
        ),
      ].sort(),
      sorted,
    );
  });

  it('drops a removed container from the answers (time printed)', async () => {
    const server = `@${await bridgeIp('h2')}`;
    const gone = await ipOf('h1', 'web2');
    await dockerOk(lab, 'h1', ['rm', '-f', 'web2']);
    const t0 = Date.now();
    await waitFor(
      'web2 gone from h2 answers',
      async () => !(await dig('h2', [server, '+short', 'web.weave.local'])).includes(gone),
      5000,
    );
    const ms = Date.now() - t0;
    console.log(`      removed container gone from another host's answers after ${ms} ms`);
    assert.equal((await dig('h2', [server, '+short', 'web.weave.local'])).split('\n').length, 2);
  });

  it('keeps answering with the same address when a container moves to another host', async () => {
    const c1 = await lab.addContainer('h1', 'mover');
    const ip = (await weaveOk(lab, 'h1', ['attach', `netns:${c1.netns}`])).trim();
    await weaveOk(lab, 'h1', ['dns-add', `netns:${c1.netns}`, '-h', 'mover']);
    await waitFor('h2 knows mover', async () => (await weave(lab, 'h2', ['dns-lookup', 'mover'])).stdout.trim() === ip);
    await weaveOk(lab, 'h1', ['detach', `netns:${c1.netns}`]);
    const c2 = await lab.addContainer('h2', 'mover');
    await weaveOk(lab, 'h2', ['attach', `${ip}/12`, `netns:${c2.netns}`]);
    await weaveOk(lab, 'h2', ['dns-add', ip, '-h', 'mover.weave.local']);
    await waitFor(
      'h1 answers mover with its one address',
      async () => (await dig('h1', [`@${await bridgeIp('h1')}`, '+short', 'mover.weave.local'])) === ip,
    );
    const lookup = await weave(lab, 'h1', ['dns-lookup', 'nobody']);
    assert.notEqual(lookup.code, 0);
    assert.match(lookup.stderr, /^weave: nobody\.weave\.local is not known$/m);
  });

  it('forwards other names to the resolvers in resolv.conf, read again when it changes', async () => {
    const upstream = lab.host('h2').addrs[0];
    // A name with more addresses than 512 bytes hold: upstream truncates it over UDP, answers it whole over TCP.
    const hosts = join(lab.host('h2').dataDir, 'dnsmasq.hosts');
    writeFileSync(hosts, Array.from({ length: 100 }, (_, i) => `192.0.2.${i + 1} many.test\n`).join(''));
    lab.spawn('h2', [
      'dnsmasq',
      '--no-daemon',
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      `--listen-address=${upstream}`,
      '--port=53',
      '--address=/example.test/192.0.2.7',
      `--addn-hosts=${hosts}`,
      `--pid-file=${join(lab.host('h2').dataDir, 'dnsmasq.pid')}`,
    ]);
    const server = `@${await bridgeIp('h1')}`;
    assert.match(await dig('h1', [server, 'example.test']), /status: SERVFAIL/, 'no upstream named yet');
    writeFileSync(resolvConf('h1'), `nameserver ${upstream}\n`);
    await waitFor('forwarded', async () => (await dig('h1', [server, '+short', 'example.test'])) === '192.0.2.7');
    assert.equal((await dig('h1', [server, '+tcp', '+short', 'many.test'])).split('\n').length, 100, 'over TCP');
    assert.match(await dig('h1', [server, '+noedns', '+ignore', 'many.test']), /^;; flags:[^;]* tc[ ;]/m, 'UDP: TC');
    assert.match(await weaveOk(lab, 'h1', ['status']), new RegExp(`Upstream: ${upstream.replace(/\./g, '\\.')}`));
  });

  it('drops malformed queries, refuses clients off the overlay, and keeps answering', async () => {
    const ip = await bridgeIp('h1');
    const garbage = `const s = require('dgram').createSocket('udp4'); let n = 0; for (const b of [Buffer.from([1]), Buffer.alloc(12, 0xff), Buffer.from('not dns at all, not at all')]) s.send(b, 53, '${ip}', () => { if (++n === 3) s.close(); });`;
    await lab.execOk('h1', [process.execPath, '-e', garbage]);
    await waitFor(
      'counted',
      async () => ((await report(lab, 'h1')).dns as { counters: { malformed: number } }).counters.malformed >= 3,
    );
    assert.match(await dig('h1', ['-b', lab.host('h1').addrs[0], `@${ip}`, 'web.weave.local']), /status: REFUSED/);
    assert.equal((await dig('h1', [`@${ip}`, '+short', 'web.weave.local'])).split('\n').length, 2, 'still answering');
    const bad = await weave(lab, 'h1', ['dns-add', '10.32.9.9', '-h', 'bad_name!']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^weave: invalid DNS name "bad_name!"$/m);
  });

  it('leaves the resolver alone with --without-dns', async () => {
    await weaveOk(lab, 'h1', ['run', '-d', '--without-dns', '--name', 'plain', 'busybox', ...SLEEP]);
    assert.doesNotMatch(
      await dockerOk(lab, 'h1', ['exec', 'plain', 'cat', '/etc/resolv.conf']),
      new RegExp(`nameserver ${(await bridgeIp('h1')).replace(/\./g, '\\.')}`),
    );
  });
});
