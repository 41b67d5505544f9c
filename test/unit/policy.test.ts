import assert from 'node:assert/strict';
import { UserError } from '../../common/errors.js';
import { compile } from '../../policy/compile.js';
import { matches, type Pod, why } from '../../policy/model.js';
import { parsePolicies, type Policy, parseSelector } from '../../policy/parse.js';
import { PolicyState } from '../../policy/state.js';
import { parseManifest, servicesOf } from '../../scheduler/manifest.js';

const doc = (spec: string, name = 'p', extra = '') =>
  `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: ${name}\n${extra}spec:\n${spec}`;

function refusal(text: string): string {
  try {
    parsePolicies(text, { file: 'policy.yaml', namespace: 'default' });
  } catch (err) {
    assert.ok(err instanceof UserError, `not a UserError: ${String(err)}`);
    assert.ok(!err.message.includes('\n'), `more than one line: ${err.message}`);
    return err.message;
  }
  assert.fail(`accepted:\n${text}`);
}
const one = (spec: string) => parsePolicies(doc(spec), { file: 'p.yaml', namespace: 'default' })[0];

const pod = (ip: string, namespace: string, labels: Record<string, string>, name = ip): Pod => ({
  ip,
  namespace,
  labels,
  name,
});

describe('network policy', () => {
  describe('parse', () => {
    it('names the document and the place of a bad port', () => {
      const text = `${doc('  podSelector: {}\n', 'ok')}\n---\n${doc(
        '  podSelector: {}\n  ingress:\n  - ports:\n    - port: 80\n    - port: 70000\n',
      )}`;
      assert.equal(refusal(text), 'policy.yaml: document 2: spec.ingress[0].ports[1].port: 70000 is not a port');
    });
    it('refuses unknown keys, bad selectors, bad CIDRs, named ports, a bad protocol, endPort below port', () => {
      assert.match(refusal(doc('  podSelector: {}\n  ingres: []\n')), /document 1: spec\.ingres: unknown key/);
      assert.match(
        refusal(doc('  podSelector:\n    matchExpressions:\n    - key: app\n      operator: Has\n')),
        /spec\.podSelector\.matchExpressions\[0\]\.operator: "Has" is not an operator/,
      );
      assert.match(
        refusal(doc('  podSelector:\n    matchExpressions:\n    - key: app\n      operator: In\n')),
        /matchExpressions\[0\]\.values: In needs at least one value/,
      );
      assert.match(
        refusal(doc('  podSelector: {}\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.1/8\n')),
        /spec\.egress\[0\]\.to\[0\]\.ipBlock\.cidr: "10\.0\.0\.1\/8" is not a CIDR/,
      );
      assert.match(
        refusal(
          doc(
            '  podSelector: {}\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/8\n        except: [11.0.0.0/8]\n',
          ),
        ),
        /ipBlock\.except\[0\]: 11\.0\.0\.0\/8 is not inside 10\.0\.0\.0\/8/,
      );
      assert.match(
        refusal(doc('  podSelector: {}\n  ingress:\n  - ports:\n    - port: http\n')),
        /ports\[0\]\.port: named port "http" is not supported/,
      );
      assert.match(
        refusal(doc('  podSelector: {}\n  ingress:\n  - ports:\n    - protocol: ICMP\n')),
        /ports\[0\]\.protocol: "ICMP" is not a protocol/,
      );
      assert.match(
        refusal(doc('  podSelector: {}\n  ingress:\n  - ports:\n    - port: 90\n      endPort: 80\n')),
        /ports\[0\]\.endPort: 80 is below port 90/,
      );
      assert.match(refusal(doc('  ingress: []\n')), /spec\.podSelector: missing/);
      assert.match(
        refusal(doc('  podSelector:\n    matchLabels:\n      "bad key!": x\n')),
        /matchLabels: "bad key!" is not a label key/,
      );
      assert.match(refusal('kind: Service\n'), /document 1: .*apiVersion/);
      assert.match(refusal('spec: *nowhere\n'), /^policy\.yaml: document 1: .*alias/i);
      assert.match(refusal('a: [1\n'), /^policy\.yaml: document 1: /);
    });
    it('fills policyTypes as Kubernetes does, and takes the namespace from metadata or the default', () => {
      assert.deepEqual(one('  podSelector: {}\n').policyTypes, ['Ingress']);
      assert.deepEqual(one('  podSelector: {}\n  egress:\n  - {}\n').policyTypes, ['Ingress', 'Egress']);
      assert.deepEqual(one('  podSelector: {}\n  policyTypes: [Egress]\n').policyTypes, ['Egress']);
      const [p] = parsePolicies(doc('  podSelector: {}\n', 'x', '  namespace: shop\n'), {
        file: 'f',
        namespace: 'default',
      });
      assert.equal(p.namespace, 'shop');
    });
    it('reads ports with protocol, port and endPort, ipBlocks with except, and combined peers', () => {
      const p = one(
        [
          '  podSelector: {matchLabels: {app: db}}',
          '  ingress:',
          '  - from:',
          '    - podSelector: {matchLabels: {app: web}}',
          '      namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}',
          '    - ipBlock: {cidr: 10.32.0.0/12, except: [10.32.1.0/24]}',
          '    ports:',
          '    - {protocol: UDP, port: 53}',
          '    - {port: 8000, endPort: 8080}',
          '    - {protocol: SCTP}',
          '',
        ].join('\n'),
      );
      assert.deepEqual(p.ingress[0].ports, [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 8000, endPort: 8080 },
        { protocol: 'SCTP' },
      ]);
      assert.equal(p.ingress[0].peers?.length, 2);
      assert.deepEqual(p.ingress[0].peers?.[1].ipBlock, { cidr: '10.32.0.0/12', except: ['10.32.1.0/24'] });
    });
  });

  describe('selectors', () => {
    const at = { path: '', key: () => at, index: () => at, fail: () => assert.fail() };
    it('matchLabels and In, NotIn, Exists, DoesNotExist', () => {
      const s = (y: unknown) => parseSelector(y, at as never);
      const l = { app: 'web', tier: 'front' };
      assert.ok(matches(s({ matchLabels: { app: 'web' } }), l));
      assert.ok(!matches(s({ matchLabels: { app: 'db' } }), l));
      assert.ok(matches(s({ matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'db'] }] }), l));
      assert.ok(!matches(s({ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] }), l));
      assert.ok(matches(s({ matchExpressions: [{ key: 'x', operator: 'NotIn', values: ['web'] }] }), l));
      assert.ok(matches(s({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }), l));
      assert.ok(!matches(s({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }), l));
      assert.ok(matches(s({}), {}));
    });
  });

  describe('semantics', () => {
    const pods = [
      pod('10.32.0.1', 'shop', { service: 'web' }, 'web'),
      pod('10.32.0.2', 'shop', { service: 'db' }, 'db'),
      pod('10.32.0.3', 'other', { service: 'web' }, 'intruder'),
      pod('10.32.0.4', 'default', {}, 'plain'),
    ];
    const dbOnlyFromWeb: Policy = parsePolicies(
      doc(
        '  podSelector: {matchLabels: {service: db}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {service: web}}\n    ports:\n    - port: 5432\n',
        'db',
        '  namespace: shop\n',
      ),
      { file: 'f', namespace: 'default' },
    )[0];
    it('isolates only the selected pods, the union of rules allows, the rest stays open', () => {
      const w = (s: string, d: string, port = 5432) => why([dbOnlyFromWeb], pods, s, d, port, 'TCP');
      assert.equal(w('10.32.0.1', '10.32.0.2').verdict, 'allow');
      assert.equal(w('10.32.0.1', '10.32.0.2').ingress.rule, 'shop/db ingress[0]');
      assert.equal(w('10.32.0.1', '10.32.0.2', 80).verdict, 'drop');
      assert.equal(w('10.32.0.3', '10.32.0.2').verdict, 'drop', 'a podSelector alone means the same namespace');
      assert.equal(w('10.32.0.2', '10.32.0.1').verdict, 'open');
      assert.match(w('10.32.0.2', '10.32.0.1').text, /^open: no policy selects DST/);
    });
    it('namespaceSelector by kubernetes.io/metadata.name, and ipBlock except', () => {
      const p = parsePolicies(
        doc(
          [
            '  podSelector: {}',
            '  ingress:',
            '  - from:',
            '    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}',
            '  - from:',
            '    - ipBlock: {cidr: 10.32.0.0/30, except: [10.32.0.1/32]}',
            '',
          ].join('\n'),
          'ns',
          '  namespace: shop\n',
        ),
        { file: 'f', namespace: 'default' },
      );
      assert.equal(why(p, pods, '10.32.0.3', '10.32.0.2', 1, 'TCP').ingress.rule, 'shop/ns ingress[0]');
      assert.equal(why(p, pods, '10.32.0.2', '10.32.0.1', 1, 'UDP').ingress.rule, 'shop/ns ingress[1]');
      assert.equal(why(p, pods, '10.32.0.1', '10.32.0.2', 1, 'TCP').verdict, 'drop');
      assert.equal(why(p, pods, '10.32.0.4', '10.32.0.2', 1, 'TCP').verdict, 'drop');
    });
    it('compiles to sets of this host only, an accept per rule and port, a counted drop per policy', () => {
      const c = compile([dbOnlyFromWeb], [pods[1]], pods);
      assert.match(c.body, /set policy_p0_in \{[^}]*elements = \{ 10\.32\.0\.2 \}/);
      assert.match(c.body, /set policy_p0_i0 \{[^}]*elements = \{ 10\.32\.0\.1 \}/);
      assert.match(
        c.body,
        /ip daddr @policy_p0_in ip saddr @policy_p0_i0 tcp dport 5432 counter accept comment "shop\/db ingress\[0\]"/,
      );
      assert.match(c.body, /ip daddr @policy_p0_in counter drop comment "shop\/db ingress drop"/);
      assert.match(c.body, /ct state established,related accept/);
      // a host that runs nothing the policy selects gets only the base chain
      const none = compile([dbOnlyFromWeb], [pods[0]], pods);
      assert.doesNotMatch(none.body, /policy_ingress/);
      assert.equal(none.size, 0);
    });
  });

  describe('the policy channel', () => {
    it('last writer wins per namespace/name, removal a tombstone, hosts speak only for themselves', () => {
      let t = 1000;
      const a = new PolicyState('a', () => t),
        b = new PolicyState('b', () => t);
      const p = one('  podSelector: {}\n');
      b.merge(a.put('default/p', p), 'a');
      assert.equal(b.live().length, 1);
      t++;
      const gone = a.put('default/p', undefined);
      b.merge(gone, 'a');
      assert.equal(b.live().length, 0);
      assert.equal(b.merge(gone, 'a'), false, 'idempotent');
      // an old copy does not bring it back
      b.merge({ policies: [{ key: 'default/p', spec: JSON.stringify(p), version: 999, author: 'a' }] }, undefined);
      assert.equal(b.live().length, 0);
      // a peer cannot speak for another host's containers
      b.merge(a.putSelf([{ ip: '10.32.0.9', namespace: 'default', labels: {}, name: 'x' }]), 'c');
      assert.equal(b.hosts.size, 0);
      assert.equal(b.rejected, 1);
      // a policy that does not parse is refused
      b.merge({ policies: [{ key: 'default/q', spec: '{"name":"q"}', version: 5000, author: 'a' }] }, undefined);
      assert.equal(b.rejected, 2);
    });
  });

  describe('in a manifest', () => {
    const manifest = `web:\n  image: busybox\n---\n${doc('  podSelector: {}\n', 'web')}---\ndb:\n  image: busybox\n  replicas: -1\n`;
    it('the services are the rest of the file, its lines and columns its own; the policies are read as the stack namespace', () => {
      const { services, policies } = servicesOf(manifest);
      assert.ok(policies);
      assert.throws(
        () => parseManifest(services, 'shop', 'm.yml'),
        /m\.yml:13:13: services\.db\.replicas: must be >= 0/,
      );
      const ok = servicesOf(`web:\n  image: busybox\n---\n${doc('  podSelector: {}\n', 'web')}`);
      assert.deepEqual(Object.keys(parseManifest(ok.services, 'shop').services), ['web']);
      const [p] = parsePolicies(manifest, { file: 'm.yml', namespace: 'shop', others: 'skip' });
      assert.equal(p.namespace, 'shop');
      assert.equal(servicesOf('web:\n  image: busybox\n').policies, false);
    });
  });
});
