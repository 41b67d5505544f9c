import assert from 'node:assert/strict';
import { parseRunArgs } from '../../docker/run-args.js';

describe('weave run arguments', () => {
  it('turns the everyday docker run flags into a create request with network mode none', () => {
    const r = parseRunArgs(
      [
        '-d',
        '--name',
        'web',
        '-h',
        'w',
        '-e',
        'A=1',
        '-e',
        'HOME',
        '-v',
        '/d:/data:ro',
        '-p',
        '8080:80',
        '-l',
        'k=v',
        '--restart=on-failure:3',
        '-w',
        '/www',
        '--entrypoint',
        'sh',
        '-m',
        '64m',
        '--cpus',
        '0.5',
        'busybox',
        '-c',
        'httpd -f',
      ],
      { HOME: '/root' },
    );
    assert.equal(r.name, 'web');
    assert.deepEqual(r.body.Cmd, ['-c', 'httpd -f']);
    assert.deepEqual(r.body.Env, ['A=1', 'HOME=/root']);
    assert.deepEqual(r.body.HostConfig.PortBindings, { '80/tcp': [{ HostIp: '', HostPort: '8080' }] });
    assert.deepEqual(r.body.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
    assert.equal(r.body.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(r.body.HostConfig.NanoCpus, 5e8);
    assert.equal(r.body.HostConfig.NetworkMode, 'none');
    assert.deepEqual(
      [r.body.Image, r.body.Hostname, r.body.WorkingDir, r.body.Entrypoint, r.body.Labels],
      ['busybox', 'w', '/www', ['sh'], { k: 'v' }],
    );
  });

  it('refuses other flags by name, a missing image and conflicting options', () => {
    assert.throws(() => parseRunArgs(['-it', 'busybox']), /unsupported docker run flag "-it"/);
    assert.throws(() => parseRunArgs(['--net=host', 'busybox']), /unsupported docker run flag "--net"/);
    assert.throws(() => parseRunArgs(['--name', 'x']), /missing image/);
    assert.throws(() => parseRunArgs(['--rm', '--restart', 'always', 'busybox']), /--restart and --rm conflict/);
    assert.throws(() => parseRunArgs(['-p', 'eighty', 'busybox']), /invalid --publish "eighty"/);
  });
});
