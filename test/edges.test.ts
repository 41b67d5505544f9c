import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { dockerHost, dockerOk, report, waitForMesh, weave, weaveOk } from '../lab/weave.js';

// The overlay's edges on three hosts, each on its own datapath: out (masquerade), in (published
// ports as kernel DNAT, TCP and UDP, hairpin, a router restart), and weave reset. A fourth host
// runs no router: its underlay namespace is outside the overlay (a router's host is on it, by its bridge).
const DATAPATHS = { h1: 'fastdp', h2: 'sleeve', h3: 'sleeve-pcap' } as const;
type Router = keyof typeof DATAPATHS;
type Host = Router | 'h4';
const OUTSIDE = 'h4';
const HOSTS = Object.keys(DATAPATHS) as Router[];
/** Who asks, as the server sees it: a CGI script of busybox httpd. */
const WHO = '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"\n';
/** In a container: httpd on 80 whose /cgi-bin/who answers the client's address (the script comes in $WHO). */
const WEB = [
  '-e',
  `WHO=${WHO}`,
  'busybox',
  'sh',
  '-c',
  'mkdir -p /www/cgi-bin && echo "$WHO" > /www/cgi-bin/who && chmod +x /www/cgi-bin/who && exec httpd -f -p 80 -h /www',
];
/** A UDP server answering each datagram with the sender's address (node, in the container's namespace). */
/** What a server answered; otherwise why not (waitFor's last error). */
const answer = (r: { code: number; stdout: string; stderr: string }) => {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.trim()}`);
  return v4(r.stdout);
};
/** httpd in a container listens on IPv6 too: an IPv4 client is [::ffff:A.B.C.D] there. */
const v4 = (remote: string) => remote.trim().replace(/^\[::ffff:(.*)\]$/, '$1');
const UDP_ECHO =
  "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(r.address,r.port,r.address));s.bind(5353)";
const udpAsk = (to: string, port: number) =>
  `const s=require('dgram').createSocket('udp4');s.on('message',(m)=>{process.stdout.write(m.toString());process.exit(0)});s.send('who',${port},'${to}');setTimeout(()=>process.exit(1),1000)`;

describe('the overlay edges: masquerade out, kernel DNAT in, on fastdp, sleeve and sleeve-pcap', function () {
  this.timeout(300_000);
  let lab: Lab;
  const addr = (h: Host) => lab.host(h).addrs[0];
  let outside = '';
  const launch = (h: Router, extra: string[] = []) =>
    weaveOk(lab, h, [
      'launch',
      '--nickname',
      h,
      '--datapath',
      DATAPATHS[h],
      ...extra,
      ...(h === 'h1' ? [] : [addr('h1')]),
    ]);
  const wget = (h: Host, container: string, url: string) =>
    lab.exec(h, ['docker', 'exec', container, 'timeout', '3', 'wget', '-qO-', url], {
      env: { DOCKER_HOST: dockerHost(lab, h) },
    });
  const pidOf = async (h: Host, container: string) =>
    Number((await dockerOk(lab, h, ['inspect', '-f', '{{.State.Pid}}', container])).trim());
  const tables = async (h: Host) => (await lab.execOk(h, ['nft', 'list', 'tables'])).trim().split('\n');

  after(async () => {
    await lab?.down();
  });

  before(async () => {
    lab = await Lab.create({ hosts: 4 });
    outside = `http://${addr(OUTSIDE)}:8000/cgi-bin/who`;
    await Promise.all(HOSTS.map((h) => lab.startDockerd(h)));
    for (const h of HOSTS) await launch(h);
    await waitForMesh(lab, HOSTS);
    // A plain HTTP server in the underlay namespace of the host with no router.
    const dir = join(lab.host(OUTSIDE).dataDir, 'www');
    mkdirSync(join(dir, 'cgi-bin'), { recursive: true });
    writeFileSync(join(dir, 'cgi-bin', 'who'), WHO);
    chmodSync(join(dir, 'cgi-bin', 'who'), 0o755);
    lab.spawn(OUTSIDE, ['busybox', 'httpd', '-f', '-p', `${addr(OUTSIDE)}:8000`, '-h', dir]);
    await waitFor('the outside httpd', async () => (await lab.exec(OUTSIDE, ['wget', '-qO-', outside])).code === 0);
  });

  it('a container of weave run on each datapath reaches a server outside the overlay, which sees its host address', async () => {
    for (const h of HOSTS) {
      await weaveOk(lab, h, ['run', '--name', 'out', 'busybox', 'sleep', '3600']);
      const r = await wget(h, 'out', outside);
      assert.equal(r.code, 0, `${h} (${DATAPATHS[h]}) → ${OUTSIDE}'s underlay: ${r.stderr}`);
      assert.equal(r.stdout.trim(), addr(h), `${OUTSIDE} sees ${h}'s underlay address`);
    }
  });

  it('a container with no other network has its default route via the bridge; one with a Docker network keeps its own', async () => {
    const bridge = (await lab.execOk('h1', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'weave']))
      .split(/\s+/)[3]
      .split('/')[0];
    assert.match(
      await dockerOk(lab, 'h1', ['exec', 'out', 'ip', 'route', 'show', 'default']),
      new RegExp(`via ${bridge} dev ethwe`),
    );
    // The bridge has a MAC of its own (set, not a port's): the containers' ARP entry for their gateway stays true as ports come and go.
    for (const h of HOSTS)
      assert.equal((await lab.execOk(h, ['cat', '/sys/class/net/weave/addr_assign_type'])).trim(), '3');
    await dockerOk(lab, 'h1', ['network', 'create', '--subnet', '198.19.200.0/24', 'own']);
    await dockerOk(lab, 'h1', ['run', '-d', '--network', 'own', '--name', 'both', 'busybox', 'sleep', '3600']);
    await weaveOk(lab, 'h1', ['attach', 'both']);
    const defaults = (await dockerOk(lab, 'h1', ['exec', 'both', 'ip', 'route'])) // busybox ip shows every route
      .split('\n')
      .filter((l) => l.startsWith('default'))
      .map((l) => l.trim());
    assert.deepEqual(defaults, ['default via 198.19.200.1 dev eth0']);
  });

  it('traffic between overlay addresses is not masqueraded', async () => {
    await weaveOk(lab, 'h2', ['run', '--name', 'web', ...WEB]);
    const web = (await weaveOk(lab, 'h2', ['ps', 'web'])).split(' ')[2].split('/')[0];
    const client = (await weaveOk(lab, 'h1', ['ps', 'out'])).split(' ')[2].split('/')[0];
    const seen = await waitFor('h1 out → h2 web on the overlay', async () => {
      const r = await wget('h1', 'out', `http://${web}/cgi-bin/who`);
      return answer(r);
    });
    assert.equal(seen, client);
  });

  it('publishes a TCP and a UDP port with DNAT: answered from another host with its own address, and hairpin', async () => {
    await weaveOk(lab, 'h1', ['run', '--name', 'pub', '-p', '8080:80', '-p', '5353:5353/udp', ...WEB]);
    lab.spawn('h1', ['nsenter', `--net=/proc/${await pidOf('h1', 'pub')}/ns/net`, process.execPath, '-e', UDP_ECHO]);
    assert.equal(
      await waitFor('h2 → h1:8080', async () => {
        const r = await lab.exec('h2', ['wget', '-qO-', `http://${addr('h1')}:8080/cgi-bin/who`]);
        return answer(r);
      }),
      addr('h2'),
    );
    assert.equal(
      await waitFor('h3 → h1:5353/udp', async () => {
        const r = await lab.exec('h3', [process.execPath, '-e', udpAsk(addr('h1'), 5353)]);
        return answer(r);
      }),
      addr('h3'),
    );
    assert.ok(!(await lab.exec('h1', ['ss', '-ltn', 'sport = :8080'])).stdout.includes(':8080'), 'no relay listens');
    // Hairpin: a container on h1 (and the published one itself) reaches h1's published port.
    for (const c of ['out', 'pub']) {
      const r = await wget('h1', c, `http://${addr('h1')}:8080/cgi-bin/who`);
      assert.equal(r.code, 0, `${c} → h1:8080: ${r.stderr}`);
    }
    // A host port taken: one line, and no container left behind.
    const taken = await weave(lab, 'h1', ['run', '--name', 'again', '-p', '8080:81', 'busybox', 'sleep', '3600']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /^weave: host port 8080\/tcp is published already by [0-9a-f]{12}\n$/);
    assert.equal((await dockerOk(lab, 'h1', ['ps', '-aq', '--filter', 'name=again'])).trim(), '');
    // A container on another host, through that host's underlay address.
    assert.equal(
      await waitFor('h2 out → h1:8080', async () => {
        const r = await wget('h2', 'out', `http://${addr('h1')}:8080/cgi-bin/who`);
        return answer(r);
      }),
      addr('h2'),
    );
    // The host itself, by its own address and by loopback.
    for (const to of [addr('h1'), '127.0.0.1'])
      assert.equal((await lab.exec('h1', ['wget', '-qO-', `http://${to}:8080/cgi-bin/who`])).code, 0, `h1 → ${to}`);
  });

  it('publishes on the sleeve and sleeve-pcap hosts too, answered from outside with the real client address', async () => {
    for (const h of ['h2', 'h3'] as const) {
      await weaveOk(lab, h, ['run', '--name', 'pub', '-p', '8081:80', ...WEB]);
      assert.equal(
        await waitFor(`${OUTSIDE} → ${h}:8081 (${DATAPATHS[h]})`, async () =>
          answer(await lab.exec(OUTSIDE, ['wget', '-qO-', '-T', '3', `http://${addr(h)}:8081/cgi-bin/who`])),
        ),
        addr(OUTSIDE),
      );
    }
  });

  it("publishes a manifest's ports: on the host its replica runs on", async () => {
    const f = join(lab.host('h1').dataDir, 'edge.yml');
    writeFileSync(
      f,
      'site:\n  image: busybox\n  cmd: mkdir -p /www && echo site > /www/index.html && exec httpd -f -p 80 -h /www\n  ports: ["8090:80"]\n',
    );
    await weaveOk(lab, 'h1', ['deploy', f]);
    await waitFor(
      'the replica answers on its host:8090',
      async () => {
        for (const h of HOSTS) {
          const r = await lab.exec(OUTSIDE, ['wget', '-qO-', '-T', '1', `http://${addr(h)}:8090/`]);
          if (r.code === 0 && r.stdout === 'site\n') return true;
        }
        return false;
      },
      30_000,
    );
    await weaveOk(lab, 'h1', ['stack', 'rm', 'edge']);
  });

  it('answers while the router is stopped, and again after it starts, rebuilding the table from the containers', async () => {
    await weaveOk(lab, 'h1', ['stop']);
    // The kernel answers while no router runs.
    const down = await lab.exec('h2', ['wget', '-qO-', '-T', '3', `http://${addr('h1')}:8080/cgi-bin/who`]);
    assert.equal(answer(down), addr('h2'));
    await lab.execOk('h1', ['nft', 'delete', 'table', 'inet', 'weave']); // what the router restart must rebuild
    await launch('h1');
    await waitForMesh(lab, HOSTS);
    assert.equal(
      await waitFor('h2 → h1:8080 after a restart', async () => {
        const r = await lab.exec('h2', ['wget', '-qO-', `http://${addr('h1')}:8080/cgi-bin/who`]);
        return answer(r);
      }),
      addr('h2'),
    );
    assert.equal(
      await waitFor('h3 → h1:5353/udp after a restart', async () => {
        const r = await lab.exec('h3', [process.execPath, '-e', udpAsk(addr('h1'), 5353)]);
        return answer(r);
      }),
      addr('h3'),
    );
    assert.deepEqual((await report(lab, 'h1')).firewall, { table: 'inet weave', masquerade: true });
    assert.match(
      await weaveOk(lab, 'h1', ['status']),
      /Service: firewall\n\s*Table: nftables inet weave\n\s*Masquerade: out of 10\.32\.0\.0\/12\n/,
    );
  });

  it('answers through a router killed with -9 and restarted by its supervisor', async () => {
    const before = await report(lab, 'h1');
    process.kill(before.pid, 'SIGKILL'); // the supervisor starts it again
    await waitFor('a new router on h1', async () => (await report(lab, 'h1')).pid !== before.pid, 30_000);
    await waitFor(
      'h1 connected again',
      async () => {
        const r = await report(lab, 'h1');
        return r.connections.filter((c) => c.state === 'established').length === HOSTS.length - 1;
      },
      30_000,
    );
    const r = await lab.exec('h3', [process.execPath, '-e', udpAsk(addr('h1'), 5353)]);
    assert.equal(answer(r), addr('h3'));
    assert.match(await lab.execOk('h1', ['nft', 'list', 'chain', 'inet', 'weave', 'in_ports']), /udp dport 5353 dnat/);
  });

  it('with --no-masquerade a container does not get out', async () => {
    await weaveOk(lab, 'h3', ['stop']);
    await launch('h3', ['--no-masquerade']);
    await waitForMesh(lab, HOSTS);
    const r = await wget('h3', 'out', outside);
    assert.notEqual(r.code, 0, 'no answer comes back to an overlay address');
  });

  it("weave reset removes the router's table and leaves a user's own", async () => {
    await lab.execOk('h2', ['nft', 'add', 'table', 'inet', 'mine']);
    assert.ok((await tables('h2')).includes('table inet weave'));
    await weaveOk(lab, 'h2', ['reset']);
    const left = await tables('h2');
    assert.ok(!left.includes('table inet weave'), left.join(', '));
    assert.ok(left.includes('table inet mine'), left.join(', '));
  });
});
