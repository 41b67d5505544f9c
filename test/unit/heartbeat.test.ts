import assert from 'node:assert/strict';
import { DOWN_AFTER_MS, HEARTBEAT_INTERVAL_MS, Heartbeats, type BeatKind } from '../../router/heartbeat.js';

/**
 * Two fastdp routers a and b wired back to back; `blocked` holds what does not arrive: 'vxlan', 'sleeve', or 'b:vxlan'
 * (only b's).
 */
function pair() {
  let now = 0;
  const blocked = new Set<string>();
  const changes: string[] = [];
  const make = (self: string, other: () => Heartbeats) =>
    new Heartbeats({
      now: () => now,
      send: (_peer, kind: BeatKind, flags) => {
        if (!blocked.has(kind) && !blocked.has(`${self}:${kind}`)) other().receive(self, flags, true);
      },
      onChange: (peer) => changes.push(`${self}:${peer}`),
    });
  const a: Heartbeats = make('a', () => b);
  const b: Heartbeats = make('b', () => a);
  const run = (ms: number) => {
    for (const end = now + ms; now < end; now += HEARTBEAT_INTERVAL_MS) {
      a.tick([{ name: 'b', twoPorts: true }]);
      b.tick([{ name: 'a', twoPorts: true }]);
    }
  };
  return { a, b, blocked, changes, run };
}

describe('data-path heartbeats', () => {
  it('come up both ways within two rounds', () => {
    const { a, b, run } = pair();
    run(2 * HEARTBEAT_INTERVAL_MS);
    assert.deepEqual([a.up('b'), b.up('a'), a.reaches('b'), b.reaches('a')], [true, true, true, true]);
  });

  it('a blocked VXLAN port takes fastdp away but not the sleeve; both come back', () => {
    const { a, b, blocked, run } = pair();
    run(3 * HEARTBEAT_INTERVAL_MS);
    blocked.add('vxlan');
    run(DOWN_AFTER_MS + 2 * HEARTBEAT_INTERVAL_MS);
    assert.deepEqual([a.up('b'), b.up('a'), a.reaches('b'), b.reaches('a')], [false, false, true, true]);
    blocked.clear();
    run(2 * HEARTBEAT_INTERVAL_MS);
    assert.deepEqual([a.up('b'), b.up('a')], [true, true]);
  });

  it('no UDP at all: neither end reaches the other, after the grace a new peer gets', () => {
    const { a, blocked, run } = pair();
    blocked.add('vxlan');
    blocked.add('sleeve');
    run(HEARTBEAT_INTERVAL_MS);
    assert.equal(a.reaches('b'), true, 'a new neighbour is given the benefit of the doubt');
    run(DOWN_AFTER_MS + HEARTBEAT_INTERVAL_MS);
    assert.deepEqual([a.up('b'), a.reaches('b')], [false, false]);
    blocked.clear();
    run(2 * HEARTBEAT_INTERVAL_MS);
    assert.deepEqual([a.up('b'), a.reaches('b')], [true, true]);
  });

  it('only one direction blocked is a lost path for both ends', () => {
    const { a, b, blocked, run } = pair();
    run(3 * HEARTBEAT_INTERVAL_MS);
    // b's datagrams stop arriving at a (a one-way firewall): a stops hearing b, and says so to b.
    blocked.add('b:vxlan');
    blocked.add('b:sleeve');
    run(DOWN_AFTER_MS + 2 * HEARTBEAT_INTERVAL_MS);
    assert.deepEqual([a.up('b'), a.reaches('b'), b.up('a'), b.reaches('a')], [false, false, false, false]);
  });
});
