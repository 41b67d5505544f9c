import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, waitFor } from '../lab/lab.js';
import type { LabContainer } from '../lab/lab.js';
import { launchAll, report, waitForMesh, waitForPing, weaveOk } from '../lab/weave.js';

const FUZZ = join(dirname(fileURLToPath(import.meta.url)), '..', 'lab', 'fuzz-datagrams.ts');

describe('hostile input never takes a router down', function () {
  this.timeout(180_000);
  let lab: Lab;
  const c: LabContainer[] = [];
  const ip = (n: number) => `10.32.7.${n}`;
  after(async () => { await lab?.down(); });

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await launchAll(lab, ['h1', 'h2']);
    await waitForMesh(lab);
    for (const [i, h] of ['h1', 'h2'].entries()) {
      c.push(await lab.addContainer(h, 'c'));
      await weaveOk(lab, h, ['attach', `${ip(i + 1)}/12`, `netns:${c[i].netns}`]);
    }
    await waitForPing(lab, c[0].netns, ip(2));
  });

  const fuzz = async (count: number, seed: number) => {
    const r = await report(lab, 'h1');
    const out = await lab.execOk('h2', [process.execPath, '--import', 'tsx', FUZZ, lab.host('h1').addrs[0], String(r.udpPort), String(r.vni), String(r.mtu), String(count), String(seed)], { timeoutMs: 60_000 });
    return Number(out.trim());
  };

  it('drops a VXLAN datagram whose inner frame is larger than the bridge MTU, and counts it', async () => {
    const before = await report(lab, 'h1');
    const frame = `Buffer.concat([Buffer.from([8,0,0,0, ${before.vni >> 16},${(before.vni >> 8) & 255},${before.vni & 255},0]), Buffer.alloc(${before.mtu + 18}, 0x42)])`;
    await lab.execOk('h2', [process.execPath, '-e', `const s=require('dgram').createSocket('udp4'); s.send(${frame}, ${before.udpPort}, '${lab.host('h1').addrs[0]}', () => s.close());`]);
    const after = await waitFor('counted', async () => { const r = await report(lab, 'h1'); return (r.counters.dropped.oversized ?? 0) > (before.counters.dropped.oversized ?? 0) ? r : undefined; });
    assert.equal(after.pid, before.pid, 'the same router');
    await waitForPing(lab, c[1].netns, ip(1));
  });

  it('survives a datagram fuzz run, counting every datagram it was sent, and containers still ping', async () => {
    const before = await report(lab, 'h1');
    const sent = await fuzz(3000, 7);
    const after = await waitFor('all received', async () => { const r = await report(lab, 'h1'); return r.counters.received.datagrams - before.counters.received.datagrams >= sent ? r : undefined; });
    assert.equal(after.pid, before.pid, 'the same router');
    const dropped = (r: typeof before) => Object.values(r.counters.dropped).reduce((n, x) => n + x, 0);
    assert.ok(dropped(after) - dropped(before) > sent / 2, `most were dropped by reason: ${JSON.stringify(after.counters.dropped)}`);
    assert.equal(after.counters.dropped.fault ?? 0, 0, 'no fault in the frame path');
    await waitForPing(lab, c[0].netns, ip(2));
  });

  it('caps the MAC table when a container sends from 100 000 random source MACs, and pings go on', async () => {
    const flood = `import os, socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('ethwe', 0))
for i in range(100000):
    s.send(b'\\xff' * 6 + bytes([2]) + os.urandom(5) + b'\\x88\\xb5' + b'\\x00' * 46)`;
    await lab.execOk('h1', ['ip', 'netns', 'exec', c[0].netns, 'python3', '-c', flood], { timeoutMs: 120_000 });
    const r1 = await waitFor('h1 evicted', async () => { const r = await report(lab, 'h1'); return r.counters.macsEvicted > 0 ? r : undefined; });
    assert.ok(r1.macs.length <= 8192, `${r1.macs.length} MACs`);
    const r2 = await report(lab, 'h2');
    assert.ok(r2.macs.length <= 8192, `h2 holds ${r2.macs.length} MACs`);
    await waitForPing(lab, c[0].netns, ip(2));
    await waitForPing(lab, c[1].netns, ip(1));
  });

  it('is started again by its supervisor after kill -9, with its allocations and attachments, and containers reach each other again (time printed)', async () => {
    const before = await report(lab, 'h1');
    const ps = await weaveOk(lab, 'h1', ['ps']);
    process.kill(before.pid, 'SIGKILL');
    const t0 = Date.now();
    const after = await waitFor('a new router answers', async () => { const r = await report(lab, 'h1').catch(() => undefined); return r && r.pid !== before.pid ? r : undefined; }, 15_000, 50);
    await waitFor('pings again', async () => (await lab.execIn(c[1].netns, ['ping', '-c1', '-W1', ip(1)])).code === 0, 15_000, 50);
    const ms = Date.now() - t0;
    console.log(`      kill -9 to containers pinging again: ${ms} ms`);
    assert.equal(after.supervisorPid, before.supervisorPid, 'the same supervisor');
    assert.equal(after.name, before.name);
    assert.deepEqual(after.ipam.allocations, before.ipam.allocations);
    assert.equal(await weaveOk(lab, 'h1', ['ps']), ps, 'the attachment was taken back');
    assert.match(await lab.execOk('h1', ['cat', join(lab.host('h1').dataDir, 'weave.log')]), /supervisor: the router died \(SIGKILL\); starting it again/);
  });
});
