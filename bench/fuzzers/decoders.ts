// Seeded mutation of the pure decoders every door leads to. (Coverage-guided: Jazzer.js installs
// from the registry, but its prebuilt fuzzer addon needs glibc 2.38 and Debian 12 has 2.36.) Each
// door takes valid inputs, mutates them and feeds them in; what it may throw is a decode error,
// which its caller counts; anything else is a crash. After a run, each decoder still takes a valid
// input as before.
import { checkBody } from '../../api/body.js';
import { parseQuery } from '../../api/query.js';
import { UserError } from '../../common/errors.js';
import { intParam } from '../../common/route.js';
import { DNS, DnsRecords } from '../../dns/records.js';
import { MACS, MacsChannel, type MacChange } from '../../gossip/macs.js';
import { TOPOLOGY, TopologyChannel } from '../../gossip/topology.js';
import { GossipChannel } from '../../gossip/typed-channel.js';
import { weave } from '../../proto/gen/weave.js';
import { parsePolicies, PolicyError } from '../../policy/parse.js';
import { POLICY, PolicyState } from '../../policy/state.js';
import { decode, encode, encodeRelay } from '../../router/vxlan.js';
import { seededRandom } from './rand.js';

export interface DoorResult {
  door: string;
  inputs: number;
  seconds: number;
  crashes: number;
  firstCrash?: string;
  still: boolean;
}

function mutator(seed: number) {
  const rand = seededRandom(seed);
  return (valid: Uint8Array): Buffer => {
    const d = Buffer.from(valid);
    switch (rand(4)) {
      case 0:
        for (let k = rand(6) + 1; k > 0 && d.length; k--) d[rand(d.length)] = rand(256);
        return d;
      case 1:
        return d.subarray(0, rand(d.length + 1));
      case 2:
        return Buffer.concat([d, Buffer.from(Array.from({ length: rand(64) }, () => rand(256)))]);
      default:
        return Buffer.from(Array.from({ length: rand(200) }, () => rand(256)));
    }
  };
}

/** Runs `n` mutated inputs through a decoder; `expected` says which errors are its own refusals. */
function door(
  name: string,
  n: number,
  seed: number,
  valids: Uint8Array[],
  feed: (b: Buffer) => unknown,
  expected: (e: unknown) => boolean,
  still: () => boolean,
): DoorResult {
  const mutate = mutator(seed);
  const t0 = process.hrtime.bigint();
  let crashes = 0,
    firstCrash: string | undefined;
  for (let i = 0; i < n; i++) {
    const input = mutate(valids[i % valids.length]);
    try {
      feed(input);
    } catch (e) {
      if (expected(e)) continue;
      crashes++;
      firstCrash ??= `${(e as Error).stack?.split('\n').slice(0, 3).join(' | ')} on ${input.toString('hex').slice(0, 80)}`;
    }
  }
  return {
    door: name,
    inputs: n,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    crashes,
    firstCrash,
    still: still(),
  };
}

/** protobufjs throws these (RangeError for lengths, TypeError for bad UTF-8); anything else from a merge is ours. */
const decodeError = (e: unknown) =>
  e instanceof Error &&
  (/invalid wire type|index out of range|illegal|invalid|premature|not valid for encoding/i.test(e.message) ||
    e instanceof RangeError);

export function fuzzDecoders(n: number, seed: number): DoorResult[] {
  const frame = Buffer.alloc(60, 7);
  const vxlan = [encode(6784, frame), encodeRelay(6784, 42n, 5, frame)];
  const topo = new GossipChannel(TOPOLOGY, () => new TopologyChannel('me'));
  const macs = new GossipChannel(MACS, (emit: (c: MacChange) => void) => new MacsChannel('me', Date.now, emit));
  const dns = new GossipChannel(DNS, () => new DnsRecords('me'));

  const peer = 'p';
  const policy = new GossipChannel(POLICY, () => new PolicyState('me'));
  const policyYaml =
    'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]\n    ports: [{port: 80, endPort: 90}]\n';
  const validPolicy = weave.PolicyState.encode({
    policies: [
      {
        key: 'default/p',
        spec: JSON.stringify(parsePolicies(policyYaml, { file: 'f', namespace: 'default' })[0]),
        version: Date.now(),
        author: peer,
      },
    ],
    hosts: [
      { peer: peer, version: Date.now(), pods: [{ address: '10.32.0.1', namespace: 'default', labels: { a: 'b' } }] },
    ],
  }).finish();
  const validTopo = weave.Topology.encode({
    peers: [
      {
        name: peer,
        version: Date.now(),
        nickname: 'n',
        udpPort: 6784,
        addrs: ['1.2.3.4:6783'],
        links: [{ peer: 'me', addr: 'a', outbound: true }],
      },
    ],
  }).finish();
  const validMacs = weave.Macs.encode({ entries: [{ mac: 42, peer, ts: Date.now(), deleted: false }] }).finish();
  const validDns = weave.DnsRecords.encode({
    entries: [{ name: 'web', ip: '10.32.0.1', peer, version: Date.now(), deleted: false, ident: 'x' }],
  }).finish();
  const fresh =
    (mk: () => Uint8Array, ch: { merge(d: Uint8Array, f: string | undefined, s: string): boolean | Uint8Array }) =>
    () => {
      try {
        return !!ch.merge(mk(), peer, peer) || true;
      } catch {
        return false;
      }
    };
  const query = { interval: intParam(1, 60), subnet: (r: string) => r };
  const body = { target: 'string', cidrs: 'string[]?', mac: 'string?' } as const;
  return [
    door(
      'vxlan datagrams',
      n,
      seed,
      vxlan,
      (b) => decode(b, 6784, 1464),
      () => false,
      () => typeof decode(vxlan[0], 6784, 1464) !== 'string',
    ),
    door(
      'topology gossip',
      n,
      seed,
      [validTopo],
      (b) => topo.merge(b, peer, peer),
      decodeError,
      fresh(
        () =>
          weave.Topology.encode({
            peers: [{ name: 'q', version: Date.now() + 1, nickname: 'q', udpPort: 1, addrs: [], links: [] }],
          }).finish(),
        topo,
      ),
    ),
    door(
      'MAC gossip',
      n,
      seed,
      [validMacs],
      (b) => macs.merge(b, peer, peer),
      decodeError,
      fresh(
        () => weave.Macs.encode({ entries: [{ mac: 7, peer: 'q', ts: Date.now() + 1, deleted: false }] }).finish(),
        macs,
      ),
    ),
    door(
      'DNS gossip',
      n,
      seed,
      [validDns],
      (b) => dns.merge(b, peer, peer),
      decodeError,
      fresh(
        () =>
          weave.DnsRecords.encode({
            entries: [{ name: 'ok', ip: '10.32.0.9', peer: 'q', version: Date.now() + 1, deleted: false, ident: 'y' }],
          }).finish(),
        dns,
      ),
    ),
    door(
      'policy gossip',
      n,
      seed,
      [validPolicy],
      (b) => policy.merge(b, peer, peer),
      decodeError,
      fresh(
        () => weave.PolicyState.encode({ hosts: [{ peer: 'q', version: Date.now() + 1, pods: [] }] }).finish(),
        policy,
      ),
    ),
    door(
      'NetworkPolicy YAML',
      n,
      seed,
      [Buffer.from(policyYaml)],
      (b) => parsePolicies(b.toString('utf8'), { file: 'f', namespace: 'default' }),
      (e) => e instanceof PolicyError,
      () => parsePolicies(policyYaml, { file: 'f', namespace: 'default' }).length === 1,
    ),
    door(
      'API query strings',
      n,
      seed,
      [Buffer.from('interval=5&subnet=10.32.0.0/24')],
      (b) => parseQuery(b.toString('latin1'), query),
      (e) => e instanceof UserError,
      () => parseQuery('interval=5', query).interval === 5,
    ),
    door(
      'API bodies',
      n,
      seed,
      [Buffer.from('{"target":"netns:x","cidrs":["10.32.0.1/12"]}')],
      (b) => {
        let v: unknown;
        try {
          v = JSON.parse(b.toString('utf8'));
        } catch {
          return;
        }
        if (v && typeof v === 'object' && !Array.isArray(v)) checkBody(v as Record<string, unknown>, body, 'attach');
      },
      (e) => e instanceof UserError,
      () => checkBody({ target: 'x' }, body, 'attach').target === 'x',
    ),
  ];
}
