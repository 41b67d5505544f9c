import assert from 'node:assert/strict';
import { UserError } from '../../common/errors.js';
import { canonicalService, parseManifest, serviceDigest } from '../../scheduler/manifest.js';

/** The one-line message parseManifest refuses `text` with. */
function refusal(text: string, stack = 'demo'): string {
  try {
    parseManifest(text, stack, 'stack.yml');
  } catch (err) {
    assert.ok(err instanceof UserError, `not a UserError: ${String(err)}`);
    assert.ok(!err.message.includes('\n'), `more than one line: ${err.message}`);
    return err.message;
  }
  assert.fail(`accepted:\n${text}`);
}

const only = (text: string) => parseManifest(text, 'demo').services.web;

describe('stack manifest', () => {
  it("normalises a manifest in the seeds' shape, services in file order", () => {
    const stack = parseManifest(
      [
        'web:',
        '  image: busybox:latest',
        '  cmd: httpd -f -p 80 -h /www',
        '  replicas: 20',
        '  env: {GREETING: hello, PORT: 80, DEBUG: false}',
        '  constraints: ["os==ubuntu", "rack!=r1"]',
        '  spread: os',
        '  volumes: ["data:/data", "logs:/var/log:ro"]',
        '  restart: no',
        'cache:',
        '  image: redis',
        '  constraints: arch==amd64',
        '  restart: false',
        'api:',
        '  image: api:1',
        '  restart: on-failure',
      ].join('\n'),
      'shop',
    );
    assert.equal(stack.name, 'shop');
    assert.deepEqual(Object.keys(stack.services), ['web', 'cache', 'api']);
    assert.deepEqual(stack.services.web, {
      image: 'busybox:latest',
      cmd: ['sh', '-c', 'httpd -f -p 80 -h /www'],
      replicas: 20,
      env: { GREETING: 'hello', PORT: '80', DEBUG: 'false' },
      constraints: [
        { label: 'os', op: '==', value: 'ubuntu' },
        { label: 'rack', op: '!=', value: 'r1' },
      ],
      spread: 'os',
      volumes: [
        { name: 'data', path: '/data', readOnly: false, replicas: 1 },
        { name: 'logs', path: '/var/log', readOnly: true, replicas: 1 },
      ],
      restart: 'no',
    });
    assert.deepEqual(stack.services.cache, {
      image: 'redis',
      replicas: 1,
      env: {},
      constraints: [{ label: 'arch', op: '==', value: 'amd64' }],
      volumes: [],
      restart: 'no',
    });
    assert.deepEqual(stack.services.api, {
      image: 'api:1',
      replicas: 1,
      env: {},
      constraints: [],
      volumes: [],
      restart: 'on-failure',
    });
  });

  it('applies the defaults and leaves cmd and spread out when absent', () => {
    const web = only('web:\n  image: nginx\n');
    assert.deepEqual(web, { image: 'nginx', replicas: 1, env: {}, constraints: [], volumes: [], restart: 'always' });
    assert.equal(web.cmd, undefined);
    assert.ok(!('spread' in web));
    assert.equal(only('web: {image: nginx, replicas: 0}').replicas, 0);
  });

  it('runs a string cmd with sh -c and a list as it is', () => {
    assert.deepEqual(only('web:\n  image: a\n  cmd: echo $HOME && sleep 1\n').cmd, [
      'sh',
      '-c',
      'echo $HOME && sleep 1',
    ]);
    assert.deepEqual(only('web:\n  image: a\n  cmd: [sleep, "3600"]\n').cmd, ['sleep', '3600']);
    assert.equal(refusal('web:\n  image: a\n  cmd: []\n'), 'stack.yml:3:8: services.web.cmd: must not be empty');
    assert.equal(
      refusal('web:\n  image: a\n  cmd: 3\n'),
      'stack.yml:3:8: services.web.cmd: must be a string or a list',
    );
  });

  it('takes env as a map or as a list of NAME=value', () => {
    assert.deepEqual(only('web:\n  image: a\n  env:\n    A: x\n    B: 1.5\n    C: true\n').env, {
      A: 'x',
      B: '1.5',
      C: 'true',
    });
    assert.deepEqual(only('web:\n  image: a\n  env: ["A=x", "B=a=b", "C="]\n').env, { A: 'x', B: 'a=b', C: '' });
    assert.equal(
      refusal('web:\n  image: a\n  env: [A=1, B]\n'),
      'stack.yml:3:14: services.web.env[1]: invalid env "B": expected NAME=value',
    );
    assert.equal(
      refusal('web:\n  image: a\n  env: [A=1, A=2]\n'),
      'stack.yml:3:14: services.web.env[1]: env A set twice',
    );
    assert.match(
      refusal('web:\n  image: a\n  env:\n    OK: 1\n    1BAD: 2\n'),
      /^stack\.yml:5:5: services\.web\.env\.1BAD: invalid env name "1BAD"/,
    );
    assert.equal(
      refusal('web:\n  image: a\n  env: {A: null}\n'),
      'stack.yml:3:12: services.web.env.A: must be a string, a number or a boolean',
    );
  });

  it('reports a YAML syntax error at its line and column', () => {
    assert.equal(
      refusal('web:\n  image: a\n    cmd: x\n'),
      'stack.yml:2:10: Nested mappings are not allowed in compact mappings',
    );
    assert.equal(refusal('web: {image: a}\nweb: {image: b}\n'), 'stack.yml:2:1: Map keys must be unique');
  });

  it('names an unknown key where it is written, before the required key it may be a misspelling of', () => {
    assert.match(
      refusal('web:\n  replicas: 2\n  imagee: busybox\n'),
      /^stack\.yml:3:3: services\.web: unknown key "imagee" \(expected image, cmd,/,
    );
    assert.equal(refusal('web:\n  replicas: 2\n'), 'stack.yml:1:1: services.web: missing required key "image"');
  });

  it('refuses replicas that are negative, not integers or too many, with their place', () => {
    assert.equal(refusal('web:\n  image: a\n  replicas: -1\n'), 'stack.yml:3:13: services.web.replicas: must be >= 0');
    assert.equal(
      refusal('web:\n  image: a\n  replicas: three\n'),
      'stack.yml:3:13: services.web.replicas: must be an integer',
    );
    assert.equal(
      refusal('web:\n  image: a\n  replicas: 1.5\n'),
      'stack.yml:3:13: services.web.replicas: must be an integer',
    );
    assert.equal(
      refusal('web:\n  image: a\n  replicas: 1001\n'),
      'stack.yml:3:13: services.web.replicas: must be <= 1000',
    );
  });

  it('reports the first mistake in the file when there are several', () => {
    assert.equal(
      refusal('api:\n  image: a\n  replicas: x\nweb:\n  image: 3\n'),
      'stack.yml:3:13: services.api.replicas: must be an integer',
    );
  });

  it('refuses a restart policy it does not know', () => {
    assert.equal(
      refusal('web:\n  image: a\n  restart: sometimes\n'),
      'stack.yml:3:12: services.web.restart: must be one of always, on-failure, no',
    );
  });

  it('refuses constraints that do not parse', () => {
    assert.equal(
      refusal('web:\n  image: a\n  constraints: os=ubuntu\n'),
      'stack.yml:3:16: services.web.constraints: invalid constraint "os=ubuntu": expected label==value or label!=value',
    );
    assert.match(
      refusal('web:\n  image: a\n  constraints:\n    - os==ubuntu\n    - "rack=="\n'),
      /^stack\.yml:5:7: services\.web\.constraints\[1\]: invalid constraint "rack=="/,
    );
    assert.match(
      refusal('web:\n  image: a\n  constraints: ["os==a b"]\n'),
      /^stack\.yml:3:17: .*invalid constraint "os==a b"/,
    );
    assert.deepEqual(only('web:\n  image: a\n  constraints: ["os == ubuntu"]\n').constraints, [
      { label: 'os', op: '==', value: 'ubuntu' },
    ]);
  });

  it('refuses constraints that no host can meet', () => {
    assert.equal(
      refusal('web:\n  image: a\n  constraints:\n    - os==ubuntu\n    - rack!=r1\n    - os==centos\n'),
      'stack.yml:6:7: services.web.constraints[2]: impossible constraints: "os==ubuntu" and "os==centos" cannot both hold',
    );
    assert.match(
      refusal('web:\n  image: a\n  constraints: [os!=ubuntu, os==ubuntu]\n'),
      /^stack\.yml:3:29: .*impossible constraints: "os!=ubuntu" and "os==ubuntu"/,
    );
    // Two exclusions, or a requirement and an exclusion of another value, can hold together.
    assert.equal(only('web:\n  image: a\n  constraints: [os!=a, os!=b, rack==r1, rack!=r2]\n').constraints.length, 4);
  });

  it('refuses a volume without a name, an absolute path or a known mode', () => {
    assert.match(
      refusal('web:\n  image: a\n  volumes:\n    - data:/data\n    - data:relative\n'),
      /^stack\.yml:5:7: services\.web\.volumes\[1\]: invalid volume "data:relative"/,
    );
    assert.match(refusal('web:\n  image: a\n  volumes: [":/data"]\n'), /^stack\.yml:3:13: .*invalid volume ":\/data"/);
    assert.match(refusal('web:\n  image: a\n  volumes: ["data:/data:rx"]\n'), /invalid volume "data:\/data:rx"/);
    assert.equal(
      refusal('web:\n  image: a\n  volumes: ["a:/d", "b:/d"]\n'),
      'stack.yml:3:21: services.web.volumes[1]: two volumes mounted on /d',
    );
  });

  it('publishes ports as -p does, tcp unless told, and refuses a bad one or a host port taken twice', () => {
    assert.deepEqual(only('web:\n  image: a\n  ports: ["8080:80", 198.18.0.1:53:5353/udp]\n').ports, [
      '8080:80/tcp',
      '198.18.0.1:53:5353/udp',
    ]);
    assert.equal('ports' in only('web:\n  image: a\n'), false, 'absent when none, so digests of older stacks stay');
    assert.equal(
      refusal('web:\n  image: a\n  ports: ["80"]\n'),
      'stack.yml:3:11: services.web.ports[0]: invalid port "80": expected [IP:]HOSTPORT:PORT[/tcp|/udp]',
    );
    assert.match(refusal('web:\n  image: a\n  ports: ["70000:80"]\n'), /invalid port "70000:80"/);
    assert.match(
      refusal('web:\n  image: a\n  ports: ["8080:80", "8080:81/tcp"]\n'),
      /services\.web\.ports\[1\]: host port 8080\/tcp published twice$/,
    );
  });

  it("takes a volume as a map too, with the copies kept of each replica's volume", () => {
    const db = only(
      'web:\n  image: a\n  volumes:\n    - name: data\n      path: /data\n      replicas: 2\n    - {name: conf, path: /etc/x, readonly: true}\n',
    );
    assert.deepEqual(db.volumes, [
      { name: 'data', path: '/data', readOnly: false, replicas: 2 },
      { name: 'conf', path: '/etc/x', readOnly: true, replicas: 1 },
    ]);
    assert.match(
      refusal('web:\n  image: a\n  volumes:\n    - name: data\n      path: /data\n      replicas: 0\n'),
      /^stack\.yml:6:17: services\.web\.volumes\[0\]\.replicas: must be >= 1$/,
    );
    assert.match(
      refusal('web:\n  image: a\n  volumes:\n    - {name: data, path: /data, copies: 2}\n'),
      /volumes\[0\]: unknown key "copies" \(expected name, path, readonly, replicas\)$/,
    );
    assert.match(
      refusal('web:\n  image: a\n  volumes:\n    - {name: data}\n'),
      /volumes\[0\]: missing required key "path"$/,
    );
    // How many copies are kept is no part of what the container runs: changing it restarts nothing.
    assert.equal(serviceDigest(db), serviceDigest({ ...db, volumes: db.volumes.map((v) => ({ ...v, replicas: 3 })) }));
  });

  it('refuses bad service and stack names', () => {
    assert.match(
      refusal('web:\n  image: a\nWeb_2:\n  image: a\n'),
      /^stack\.yml:3:1: invalid service name "Web_2": lowercase letters/,
    );
    assert.match(refusal(`${'a'.repeat(33)}:\n  image: a\n`), /^stack\.yml:1:1: invalid service name/);
    assert.match(refusal('web:\n  image: a\n', 'My Stack'), /^invalid stack name "My Stack": lowercase letters/);
  });

  it('refuses an empty manifest, one without services, or one that is not a map', () => {
    assert.equal(refusal(''), 'stack.yml:1:1: no services: expected a map of service name to service');
    assert.equal(
      refusal('# just a comment\n'),
      'stack.yml:1:1: no services: expected a map of service name to service',
    );
    assert.equal(refusal('\n{}\n'), 'stack.yml:2:1: no services');
    assert.equal(refusal('- web\n'), 'stack.yml:1:1: expected a map of service name to service');
    assert.equal(refusal('web:\n'), 'stack.yml:1:5: services.web: must be a map');
  });

  it('gives a canonical form and a digest of what the container runs, both ignoring key order', () => {
    const a = only('web:\n  image: a\n  env: {X: "1", Y: "2"}\n  replicas: 2\n');
    const b = only('web:\n  replicas: 2\n  env: {Y: "2", X: "1"}\n  image: a\n');
    assert.equal(canonicalService(a), canonicalService(b));
    assert.equal(
      canonicalService(a),
      '{"constraints":[],"env":{"X":"1","Y":"2"},"image":"a","replicas":2,"restart":"always","volumes":[]}',
    );
    assert.match(serviceDigest(a), /^[0-9a-f]{12}$/);
    assert.equal(serviceDigest(a), serviceDigest(b));
    assert.notEqual(serviceDigest(a), serviceDigest({ ...a, image: 'b' }), 'another image: the replicas roll');
    assert.notEqual(serviceDigest(a), serviceDigest({ ...a, env: { X: '1', Y: '3' } }));
    assert.equal(
      serviceDigest(a),
      serviceDigest({ ...a, replicas: 3, spread: 'os', constraints: [{ label: 'os', op: '==', value: 'x' }] }),
      'scaling or moving a service restarts nothing',
    );
  });
});
