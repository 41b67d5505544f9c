import assert from 'node:assert/strict';
import { Lab } from '../lab/lab.js';
import { inSection, outSection } from '../firewall/edges.js';
import { NftFirewall } from '../firewall/firewall.js';

// The router's nftables table against the real kernel, in a lab host's namespace.
describe("the firewall: the router's own nftables table, one transaction per section", function () {
  this.timeout(60_000);
  let lab: Lab;
  let fw: NftFirewall;
  const names = async () => {
    const listed = (await fw.list()) as { nftables: Record<string, { name?: string }>[] };
    return listed.nftables
      .flatMap((o) => ['chain', 'set', 'counter'].flatMap((k) => (o[k]?.name ? [o[k].name] : [])))
      .sort();
  };
  const ruleset = async () => lab.execOk('h1', ['nft', 'list', 'ruleset']);

  before(async () => {
    lab = await Lab.create({ hosts: 1 });
    fw = new NftFirewall(['ip', 'netns', 'exec', lab.host('h1').netns, 'nft']);
  });
  after(async () => {
    await lab?.down();
  });

  it("replaces one section's chains, sets and counters, leaving the others", async () => {
    await fw.ensure();
    await fw.replace('out', outSection('10.32.0.0/12', 'weave', true));
    const pub = { hostIp: '', hostPort: 8080, port: 80, proto: 'tcp' as const, ip: '10.32.0.5' };
    await fw.replace('in', inSection('10.32.0.0/12', 'weave', [pub]));
    await fw.replace(
      'policy',
      'counter policy_drops {}\nset policy_allowed { type ipv4_addr; }\nchain policy_fwd { ip saddr @policy_allowed accept; counter name policy_drops drop; }',
    );
    assert.deepEqual(await names(), [
      'in_output',
      'in_ports',
      'in_postrouting',
      'in_prerouting',
      'out_postrouting',
      'policy_allowed',
      'policy_drops',
      'policy_fwd',
    ]);
    await fw.replace('in', inSection('10.32.0.0/12', 'weave', [{ ...pub, hostPort: 9090, proto: 'udp' }]));
    assert.match(await ruleset(), /udp dport 9090 dnat ip to 10\.32\.0\.5:80/);
    assert.doesNotMatch(await ruleset(), /dport 8080/);
    await fw.replace('in', '');
    assert.deepEqual(await names(), ['out_postrouting', 'policy_allowed', 'policy_drops', 'policy_fwd']);
    await fw.replace('out', outSection('10.32.0.0/12', 'weave', false));
    assert.deepEqual(await names(), ['policy_allowed', 'policy_drops', 'policy_fwd']);
    await fw.replace('policy', 'chain policy_fwd { accept; }'); // its counter and set go, its chain is new
    assert.deepEqual(await names(), ['policy_fwd']);
  });

  it('refuses what nft refuses in one line, and the previous objects stay in force', async () => {
    const before = await ruleset();
    await assert.rejects(
      fw.replace('policy', 'chain policy_fwd { ip saddr @nowhere accept; }'),
      (err: Error) => /^nft refused the policy section: /.test(err.message) && !err.message.includes('\n'),
    );
    assert.equal(await ruleset(), before);
    await assert.rejects(fw.replace('Bad-Name', ''), /invalid firewall section "Bad-Name"/);
  });

  it("is removed with everything in it, and a user's own table stays", async () => {
    await lab.execOk('h1', ['nft', 'add', 'table', 'inet', 'mine']);
    await fw.remove();
    const tables = await lab.execOk('h1', ['nft', 'list', 'tables']);
    assert.doesNotMatch(tables, /inet weave/);
    assert.match(tables, /inet mine/);
    await fw.replace('out', outSection('10.32.0.0/12', 'weave', true)); // after a reset nothing comes back
    assert.doesNotMatch(await lab.execOk('h1', ['nft', 'list', 'tables']), /inet weave/);
  });
});
