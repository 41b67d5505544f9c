import assert from 'node:assert/strict';
import { IpamNet } from '../fixtures/ipam-net.js';
import { parseSubnet } from '../../common/subnet.js';
import { weave } from '../../proto/gen/weave.js';
import { Membership, FENCE_FRACTION } from '../../membership/majority.js';
import { MembershipState, type HostRecord } from '../../membership/state.js';
import { SchedulerState } from '../../scheduler/state.js';

const TIMEOUT = 10_000;
const record = (peer: string, lost: string[] = [], incarnation = 1): HostRecord => ({
  peer,
  version: 1,
  incarnation,
  nickname: peer,
  labels: { os: 'debian' },
  lost,
  fenced: false,
});
/** What a peer's delta looks like on the wire: encoded and decoded again. */
const wire = (m: weave.ISchedulerState) => weave.SchedulerState.decode(weave.SchedulerState.encode(m).finish());
const hostsWire = (m: weave.IHostsState) => weave.HostsState.decode(weave.HostsState.encode(m).finish());

describe('scheduler membership: death by majority, self-fencing', () => {
  it('says a peer is lost only after the host timeout, and that it is dead only when a majority says so', () => {
    const m = new Membership('a', TIMEOUT);
    const members = ['a', 'b', 'c', 'd'].map((p) => record(p));
    const reach = (p: string) => p !== 'd';
    assert.deepEqual(m.observe(members, reach, 0).lost, []);
    assert.deepEqual(m.observe(members, reach, TIMEOUT - 1).lost, []);
    const v = m.observe(members, reach, TIMEOUT);
    assert.deepEqual(v.lost, ['d']);
    assert.deepEqual(v.dead, [], "our vote and nobody else's: 1 of 4");
    members[1] = record('b', ['d']);
    assert.deepEqual(m.observe(members, reach, TIMEOUT).dead, [], '2 of 4 is not a majority');
    members[2] = record('c', ['d']);
    assert.deepEqual(m.observe(members, reach, TIMEOUT).dead, [{ peer: 'd', incarnation: 1 }], '3 of 4');
  });

  it('forgets a loss when the peer comes back before the timeout', () => {
    const m = new Membership('a', TIMEOUT);
    const members = ['a', 'b', 'c'].map((p) => record(p));
    m.observe(members, (p) => p !== 'c', 0);
    m.observe(members, () => true, TIMEOUT / 2);
    assert.deepEqual(m.observe(members, (p) => p !== 'c', TIMEOUT).lost, [], 'counted again from its new loss');
  });

  it('fences the minority side before the majority can declare it dead, and counts no votes there', () => {
    const m = new Membership('d', TIMEOUT);
    const members = ['a', 'b', 'c', 'd'].map((p) => record(p, p === 'd' ? [] : ['x']));
    const alone = (p: string) => p === 'd';
    assert.equal(m.observe(members, alone, 0).quorum, false);
    assert.equal(m.observe(members, alone, TIMEOUT * FENCE_FRACTION - 1).fenced, false);
    const v = m.observe(members, alone, TIMEOUT * FENCE_FRACTION);
    assert.equal(v.fenced, true);
    assert.ok(TIMEOUT * FENCE_FRACTION < TIMEOUT, 'fenced before the others can have lost it for the timeout');
    assert.deepEqual(m.observe(members, alone, TIMEOUT * 2).dead, [], 'a minority declares nobody dead');
    assert.equal(m.observe(members, () => true, TIMEOUT * 2).fenced, false, 'a majority in sight again');
  });

  it('an even split fences both halves', () => {
    const members = ['a', 'b', 'c', 'd'].map((p) => record(p));
    for (const [self, side] of [
      ['a', ['a', 'b']],
      ['c', ['c', 'd']],
    ] as [string, string[]][]) {
      const m = new Membership(self, TIMEOUT);
      m.observe(members, (p) => side.includes(p), 0);
      assert.equal(m.observe(members, (p) => side.includes(p), TIMEOUT).fenced, true, `${self}'s half`);
    }
  });
});

describe('scheduler state (the gossip channel)', () => {
  it('keeps the last deploy of a stack whoever wrote it, and a removal over an older deploy', () => {
    const a = new SchedulerState('a', () => 1000),
      b = new SchedulerState('b', () => 2000);
    const first = a.putStack('shop', JSON.stringify({ name: 'shop', services: {} }));
    const second = b.putStack('shop', undefined);
    assert.ok(a.merge(wire(second), 'b'));
    assert.equal(a.merge(wire(first), 'a'), false, 'the older deploy does not come back');
    assert.deepEqual(a.liveStacks(), []);
    assert.ok(b.merge(wire(first), 'a') === false);
  });

  it("takes a host's replica report only from that host (or in a full state), never a copy of our own", () => {
    const a = new SchedulerState('a', () => 1000),
      b = new SchedulerState('b', () => 1000);
    const delta = b.putSelf({ replicas: [], engineError: 'no engine' });
    assert.equal(a.merge(wire(delta), 'c'), false, 'c may not speak for b');
    assert.equal(a.rejected, 1);
    assert.ok(a.merge(wire(delta), 'b'));
    assert.equal(a.hosts.get('b')?.engineError, 'no engine');
    assert.equal(
      new SchedulerState('b', () => 1000).merge(wire(b.state()), undefined),
      false,
      'our own record is ours alone',
    );
  });

  it('refuses stacks that are not stacks and versions from the future', () => {
    const s = new SchedulerState('a', () => 1000);
    assert.equal(s.merge(wire({ stacks: [{ name: 'x', spec: '{not json', version: 1, author: 'b' }] }), 'b'), false);
    assert.equal(
      s.merge(wire({ stacks: [{ name: 'x', spec: '{"name":"x","services":{}}', version: 1e15, author: 'b' }] }), 'b'),
      false,
    );
    assert.equal(s.rejected, 2);
  });
});

describe('membership state (the hosts channel)', () => {
  it('takes a host record only from that host (or in a full state), never a copy of our own', () => {
    const a = new MembershipState('a', () => 1000),
      b = new MembershipState('b', () => 1000);
    const delta = b.putSelf({ incarnation: 5, nickname: 'b', labels: { os: 'centos' }, lost: [], fenced: false });
    assert.equal(a.merge(hostsWire(delta), 'c'), false, 'c may not speak for b');
    assert.equal(a.rejected, 1);
    assert.ok(a.merge(hostsWire(delta), 'b'));
    assert.deepEqual(a.hosts.get('b')?.labels, { os: 'centos' });
    const own = new MembershipState('b', () => 1000);
    assert.equal(own.merge(hostsWire(b.state()), undefined), false, 'our own record is ours alone');
  });

  it('a death certificate removes a host until it comes back with a newer incarnation', () => {
    const s = new MembershipState('x', () => 1000);
    s.merge(hostsWire({ hosts: [record('a'), record('b', [], 7)] }), undefined);
    s.declareDead('b', 7);
    assert.deepEqual(
      s.members().map((h) => h.peer),
      ['a'],
    );
    const older = hostsWire({ deaths: [{ peer: 'b', incarnation: 3, at: 1 }] });
    assert.equal(s.merge(older, 'c'), false, 'an older certificate changes nothing');
    s.merge(hostsWire({ hosts: [{ ...record('b', [], 9), version: 2 }] }), 'b');
    assert.deepEqual(
      s.members().map((h) => h.peer),
      ['a', 'b'],
    );
  });
});

describe("IPAM takeover of a dead peer's single address", () => {
  const RANGE = parseSubnet('10.40.0.0/24');

  // The dead peer's name sorts last: a remainder written at a real version would win the tie against c's own write.
  it("moves exactly that address, keeps the rest of the dead peer's space its own, and survives two takers of neighbouring addresses", async () => {
    const c = IpamNet.of(['z', 'b', 'c'], { range: RANGE });
    const x = await c.get('z').allocate('shop/web/1');
    const y = await c.get('z').allocate('shop/web/2');
    assert.equal(y.addr, x.addr + 1, 'neighbours');
    const before = c
      .get('b')
      .shares()
      .find((s) => s.peer === 'z')!.owned;
    c.down.add('z');
    c.group.set('c', 1); // b and c do not hear of each other's takeover until both are done
    const [tx, ty] = await Promise.all([
      c.get('b').takeover('shop/web/1', x.addr, 24, 'z'),
      c.get('c').takeover('shop/web/2', y.addr, 24, 'z'),
    ]);
    c.group.delete('c');
    assert.deepEqual([tx.ip, ty.ip], [x.ip, y.ip]);
    await new Promise((r) => setTimeout(r, 20));
    c.syncAll(); // what connections coming up do: full states both ways
    for (const n of ['b', 'c']) {
      assert.equal(c.get(n).state.owner(x.addr), 'b', `${n}: web/1's address is b's`);
      assert.equal(c.get(n).state.owner(y.addr), 'c', `${n}: web/2's address is c's`);
      assert.equal(c.get(n).state.owner(y.addr + 1), 'z', `${n}: the rest stays z's`);
      assert.equal(
        c
          .get(n)
          .shares()
          .find((s) => s.peer === 'z')!.owned,
        before - 2,
      );
    }
    await assert.rejects(c.get('b').takeover('shop/web/9', y.addr, 24, 'z'), /held by another identity|belongs to c/);
  });

  it('does not hand over the address of an identity that still runs at its owner', async () => {
    const c = IpamNet.of(['a', 'b'], { range: RANGE });
    const x = await c.get('a').allocate('shop/web/1');
    c.get('a').o.busy = (ident) => ident === 'shop/web/1';
    await assert.rejects(c.get('b').claim('shop/web/1', x.addr, 24), /still runs on a/);
    c.get('a').o.busy = () => false;
    assert.equal((await c.get('b').claim('shop/web/1', x.addr, 24)).ip, x.ip);
  });
});
