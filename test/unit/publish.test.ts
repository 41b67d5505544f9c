import assert from 'node:assert/strict';
import { fromLabel, PUBLISH_LABEL, takePortBindings } from '../../docker/publish.js';
import { parseRunArgs } from '../../docker/run-args.js';
import { inSection, outSection } from '../../firewall/edges.js';

describe('published ports: -p into the container label, and the nft sections', () => {
  it('takes -p out of the create body into the label: TCP and UDP, with and without a host address', () => {
    const { body } = parseRunArgs(['-p', '8080:80', '-p', '198.18.0.1:5353:53/udp', 'busybox']);
    const specs = takePortBindings(body);
    assert.deepEqual(specs, [
      { hostIp: '', hostPort: 8080, port: 80, proto: 'tcp' },
      { hostIp: '198.18.0.1', hostPort: 5353, port: 53, proto: 'udp' },
    ]);
    assert.equal('PortBindings' in body.HostConfig, false, 'Docker publishes nothing itself');
    assert.deepEqual(JSON.parse(body.Labels[PUBLISH_LABEL]), specs);
    assert.deepEqual(takePortBindings(parseRunArgs(['busybox']).body), []);
  });

  it('refuses what DNAT cannot do, in one line', () => {
    const take =
      (...p: string[]) =>
      () =>
        takePortBindings(parseRunArgs([...p.flatMap((x) => ['-p', x]), 'busybox']).body);
    assert.throws(take('80'), /^Error: cannot publish 80\/tcp: give the host port \(-p HOSTPORT:80\)$/);
    assert.throws(take('9:9/sctp'), /cannot publish 9\/sctp: weave publishes tcp and udp/);
    assert.throws(take('8080:80', '8080:81'), /host port 8080\/tcp is published twice/);
    assert.doesNotThrow(take('8080:80', '8080:80/udp'));
  });

  it('reads the label back, checking each port again (its values go into nft)', () => {
    const { body } = parseRunArgs(['-p', '198.18.0.1:8080:80', 'busybox']);
    takePortBindings(body);
    assert.deepEqual(fromLabel(body.Labels[PUBLISH_LABEL]), [
      { hostIp: '198.18.0.1', hostPort: 8080, port: 80, proto: 'tcp' },
    ]);
    assert.throws(() => fromLabel('nonsense'), /invalid label works\.weave\.publish: expected a list of ports/);
    const evil = JSON.stringify([{ hostIp: '1.2.3.4 accept; #', hostPort: 1, port: 1, proto: 'tcp' }]);
    assert.throws(() => fromLabel(evil), /invalid label works\.weave\.publish: bad port/);
    assert.throws(() => fromLabel(JSON.stringify([{ hostPort: 1, port: 1, proto: 'sctp' }])), /bad port 1:1\/sctp/);
  });

  it('masquerades only what leaves the overlay, and DNATs with hairpin', () => {
    assert.match(
      outSection('10.32.0.0/12', 'weave', true),
      /ip saddr 10\.32\.0\.0\/12 ip daddr != 10\.32\.0\.0\/12 oifname != "weave" masquerade/,
    );
    assert.equal(outSection('10.32.0.0/12', 'weave', false), '');
    const s = inSection('10.32.0.0/12', 'weave', [
      { hostIp: '198.18.0.1', hostPort: 53, port: 5353, proto: 'udp', ip: '10.32.0.9' },
    ]);
    assert.match(s, /ip daddr 198\.18\.0\.1 udp dport 53 dnat ip to 10\.32\.0\.9:5353/);
    assert.match(s, /ct status dnat oifname "weave" ip saddr 10\.32\.0\.0\/12 masquerade/);
    assert.equal(inSection('10.32.0.0/12', 'weave', []), '');
  });
});
