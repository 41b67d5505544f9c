import assert from 'node:assert/strict';
import { parseSubnet, numToIp } from '../../common/subnet.js';
import { IpamNet } from '../fixtures/ipam-net.js';

const RANGE = parseSubnet('10.32.0.0/24'); // small: space runs out, donations and contention are the rule

describe('IPAM chaos: 20 allocators, random operations, partitions, crashes', function () {
  this.timeout(60_000);

  for (const seed of [1, 2, 3]) {
    it(`ends with no duplicate and no lost address space (seed ${seed})`, async () => {
      // gossip loses one in five, duplicates one in ten, delays up to 5 ms
      const net = new IpamNet({
        range: RANGE,
        consensus: 20,
        seed,
        loss: 0.2,
        duplication: 0.1,
        delayMs: 5,
        waitMs: 2000,
      });
      const names = Array.from({ length: 20 }, (_, i) => `peer${String(i).padStart(2, '0')}`);
      for (const n of names) {
        net.start(n);
        net.group.set(n, 0);
      }
      const live = new Map<string, number>(); // ground truth: ident -> address, from successful operations
      let ok = 0,
        failed = 0;
      const idents = Array.from({ length: 200 }, (_, i) => `c${i}`);
      for (let step = 0; step < 800; step++) {
        if (step % 100 === 50) for (const n of names) net.group.set(n, net.rand(2)); // partition
        if (step % 100 === 80) {
          for (const n of names) net.group.set(n, 0);
          net.syncAll();
        } // heal
        if (step % 70 === 35) {
          const victim = names[net.rand(20)];
          net.crash(victim);
          setTimeout(() => {
            net.start(victim);
            net.syncAll();
          }, 20);
        }
        const alive = [...net.nodes.keys()];
        const node = net.nodes.get(alive[net.rand(alive.length)])!;
        const ident = idents[net.rand(idents.length)];
        const op = net.rand(4);
        try {
          if (op === 0 || op === 3) {
            // allocate, or move here (allocate finds the identity's address elsewhere)
            const a = await node.allocate(ident);
            live.set(ident, a.addr);
          } else if (op === 1) {
            const released = await node.release(ident);
            if (released.includes(live.get(ident)!)) live.delete(ident);
          } else {
            const addr = RANGE.start + 1 + net.rand(254);
            const a = await node.claim(ident, addr, 24);
            live.set(ident, a.addr);
          }
          ok++;
        } catch {
          failed++;
        }
        // ground truth: no two identities hold one address
        const seen = new Map<number, string>();
        for (const [i, a] of live) {
          assert.ok(!seen.has(a), `step ${step}: ${numToIp(a)} held by ${seen.get(a)} and ${i}`);
          seen.set(a, i);
        }
      }
      await new Promise((r) => setTimeout(r, 100));
      for (const n of names) {
        net.group.set(n, 0);
        if (!net.nodes.has(n)) net.start(n);
      }
      net.syncAll();
      // every view converged, covers the whole range with live owners, and agrees with what callers were told
      const views = [...net.nodes.values()].map((a) =>
        JSON.stringify([
          [...a.state.entries.values()]
            .map((e) => [e.token, e.peer, e.version])
            .sort((x, y) => Number(x[0]) - Number(y[0])),
          [...a.state.allocations.values()]
            .map((x) => [x.addr, x.ident, x.version, x.released])
            .sort((x, y) => Number(x[0]) - Number(y[0])),
        ]),
      );
      assert.equal(new Set(views).size, 1, 'all allocators converged');
      const any = net.nodes.get(names[0])!;
      const pieces = any.state.pieces();
      assert.equal(pieces[0].start, RANGE.start);
      assert.equal(
        pieces.reduce((n, p) => n + p.end - p.start, 0),
        RANGE.end - RANGE.start,
        'pieces cover the range exactly',
      );
      for (const p of pieces)
        assert.ok(names.includes(p.entry.peer), `piece at ${numToIp(p.start)} owned by a live peer`);
      const holders = new Map<number, string>();
      for (const a of any.state.allocations.values())
        if (!a.released) {
          assert.ok(!holders.has(a.addr));
          holders.set(a.addr, a.ident);
        }
      for (const [ident, addr] of live) assert.equal(holders.get(addr), ident, `${ident} still holds ${numToIp(addr)}`);
      assert.ok(ok > 100, `${ok} operations succeeded, ${failed} failed`);
    });
  }
});
