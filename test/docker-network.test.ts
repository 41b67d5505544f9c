import assert from 'node:assert/strict';
import { Lab, waitFor } from '../lab/lab.js';
import { dockerOk, launchAll, report, waitForMesh, weave, weaveOk } from '../lab/weave.js';

const WEB = ['sh', '-c', 'echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www'];

describe("Docker's network API on the overlay: the weavemesh plugin, docker run --network weave, compose", function () {
  this.timeout(240_000);
  let lab: Lab;
  after(async () => {
    await lab?.down();
  });

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await Promise.all(['h1', 'h2'].map((h) => lab.startDockerd(h)));
    await launchAll(lab, ['h1', 'h2']);
    await waitForMesh(lab);
  });

  const docker = (host: string, args: string[]) => dockerOk(lab, host, args);
  const ipOn = async (host: string, name: string, net = 'weave') =>
    (await docker(host, ['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name])).trim();
  const fetch = (host: string, from: string, addr: string) =>
    docker(host, ['exec', from, 'timeout', '5', 'wget', '-qO-', `http://${addr}/`]);

  it('has the network weave on every host, on the weavemesh drivers, made once', async () => {
    for (const h of ['h1', 'h2']) {
      const nets = (await docker(h, ['network', 'ls', '--filter', 'driver=weavemesh', '--format', '{{.Name}}'])).trim();
      assert.equal(nets, 'weave');
      const ipam = (
        await docker(h, [
          'network',
          'inspect',
          '-f',
          '{{.IPAM.Driver}} {{range .IPAM.Config}}{{.Subnet}}{{end}}',
          'weave',
        ])
      ).trim();
      assert.equal(ipam, 'weavemesh 10.32.0.0/12');
    }
  });

  it('docker run --network weave: an address from our IPAM, reachable from the other host', async () => {
    await docker('h1', ['run', '-d', '--name', 'web1', '--network', 'weave', 'busybox', ...WEB]);
    await docker('h2', ['run', '-d', '--name', 'client2', '--network', 'weave', 'busybox', 'sleep', '3600']);
    const ip1 = await ipOn('h1', 'web1');
    assert.match(ip1, /^10\.(3[2-9]|4[0-7])\./);
    await waitFor(
      'web1 from h2',
      async () => (await fetch('h2', 'client2', ip1).catch(() => '')).includes('hello'),
      15_000,
    );
  });
});
