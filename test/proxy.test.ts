import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type ExecResult } from '../common/exec.js';
import { Lab, waitFor } from '../lab/lab.js';
import type { Adapter, HookedEndpoint } from '../docker/proxy/hooks.js';
import { loadAdapterConfig, mergeEndpoints } from '../docker/proxy/powerstrip.js';
import { DockerProxy } from '../docker/proxy/proxy.js';

// The docker CLI (Debian's, a newer API than the lab's dockerd speaks) against a DockerProxy run
// in this process in front of a lab host's engine, with two external Powerstrip adapters served
// from this process too: `greeter` adds an environment variable to every container created,
// `gate` passes or fails as the test says.
describe('Docker API proxy: the docker CLI through it to a lab dockerd, with Powerstrip adapters', function () {
  this.timeout(180_000);
  let lab: Lab | undefined;
  let proxy: DockerProxy | undefined;
  let adapterServer: http.Server | undefined;
  let tmp = '';
  const children = new Set<ChildProcess>();
  let gate: 'pass' | 'fail' | 'garbage' | 'hang' = 'pass';
  let starts = 0;

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await proxy?.close().catch(() => {});
    adapterServer?.closeAllConnections();
    adapterServer?.close();
    await lab?.down();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** The Powerstrip side of the adapters: JSON in, JSON (or trouble) out. */
  function serveAdapter(req: http.IncomingMessage, res: http.ServerResponse): void {
    let text = '';
    req.on('data', (c: Buffer) => (text += c));
    req.on('end', () => {
      const hook = JSON.parse(text) as {
        Type: string;
        ClientRequest: { Method: string; Request: string; Body: string };
      };
      const answer = (v: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(v));
      };
      if (req.url === '/greeter') {
        const body = JSON.parse(hook.ClientRequest.Body) as { Env?: string[] | null };
        body.Env = [...(body.Env ?? []), 'GREETING=from-adapter'];
        return answer({
          PowerstripProtocolVersion: 1,
          ModifiedClientRequest: { ...hook.ClientRequest, Body: JSON.stringify(body) },
        });
      }
      if (gate === 'fail') {
        res.writeHead(500);
        res.end('the gate is closed\n');
        return;
      }
      if (gate === 'garbage') {
        res.writeHead(200);
        res.end('<html>surprise</html>');
        return;
      }
      if (gate === 'hang') return;
      answer({ PowerstripProtocolVersion: 1, ModifiedClientRequest: hook.ClientRequest });
    });
  }

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'weave-proxy-test-'));
    adapterServer = http.createServer(serveAdapter);
    await new Promise<void>((r) => adapterServer!.listen(0, '127.0.0.1', () => r()));
    const port = (adapterServer.address() as AddressInfo).port;
    const file = join(tmp, 'adapters.yml');
    writeFileSync(
      file,
      [
        'version: 1',
        'endpoints:',
        '  "POST /*/containers/create":',
        '    pre: [greeter, gate]',
        '  "POST /*/containers/*/start":',
        '    post: [counter]',
        'adapters:',
        `  greeter: http://127.0.0.1:${port}/greeter`,
        `  gate: http://127.0.0.1:${port}/gate`,
        '',
      ].join('\n'),
    );
    // A built-in adapter with its own default endpoint, which the file names again: it runs once.
    const counter: Adapter = {
      name: 'counter',
      async post(_req, res) {
        if (res.Code === 204) starts++;
        return res;
      },
    };
    const builtIn: HookedEndpoint[] = [{ method: 'POST', pattern: '/containers/*/start', pre: [], post: [counter] }];
    const endpoints = mergeEndpoints(builtIn, loadAdapterConfig(file, { counter }, { timeoutMs: 2000 }));

    lab = await Lab.create({ hosts: 1 });
    const d = await lab.startDockerd('h1');
    proxy = await DockerProxy.listen({
      engine: `unix://${d.socket}`,
      socket: join(lab.host('h1').dataDir, 'proxy.sock'),
      endpoints,
    });
  });

  const env = (extra?: NodeJS.ProcessEnv) => ({ DOCKER_HOST: `unix://${proxy!.socket}`, ...extra });
  const docker = (args: string[], o: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<ExecResult> =>
    run(['docker', ...args], { env: env(o.env), input: o.input, timeoutMs: 60_000 });
  const dockerOk = async (args: string[], o?: { env?: NodeJS.ProcessEnv; input?: string }): Promise<string> => {
    const r = await docker(args, o);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  /** A long-running docker command whose output is read as it comes. */
  const follow = (args: string[]) => {
    const child = spawn('docker', args, { env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (out += c));
    return {
      child,
      out: () => out,
      stop: () => {
        child.kill();
        children.delete(child);
      },
    };
  };
  const containerCount = async () => (await dockerOk(['ps', '-aq'])).split('\n').filter(Boolean).length;

  it("answers docker version with the engine's own server section", async () => {
    const out = await dockerOk(['version']);
    assert.match(out, /Server:[\s\S]*Engine:[\s\S]*API version:\s+1\.\d+/);
  });

  it('runs a detached container that docker ps lists, through the hooked create and start', async () => {
    const id = (await dockerOk(['run', '-d', '--name', 'sleeper', 'busybox', 'sleep', '600'])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.match(await dockerOk(['ps', '--format', '{{.Names}} {{.Status}}']), /^sleeper Up/m);
    assert.equal(starts, 1, 'the built-in post hook saw the start once');
    assert.match(await dockerOk(['exec', 'sleeper', 'sh', '-c', 'echo $GREETING']), /^from-adapter$/m);
  });

  it("returns docker exec's output, error output and exit code", async () => {
    const r = await docker(['exec', 'sleeper', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual([r.code, r.stdout, r.stderr], [3, 'out\n', 'err\n']);
  });

  it('pipes stdin to docker run -i and docker exec -i, through the half-close at its end', async () => {
    assert.equal((await docker(['run', '-i', '--rm', 'busybox', 'cat'], { input: 'piped-in\n' })).stdout, 'piped-in\n');
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i}`).join('\n');
    assert.equal((await dockerOk(['exec', '-i', 'sleeper', 'wc', '-l'], { input: `${lines}\n` })).trim(), '20000');
  });

  it('speaks the API version the client asks for, hooks included (an old client: v1.24)', async () => {
    const before = proxy!.counters.versions['1.24'] ?? 0;
    assert.equal(
      await dockerOk(['run', '--rm', 'busybox', 'sh', '-c', 'echo $GREETING'], { env: { DOCKER_API_VERSION: '1.24' } }),
      'from-adapter\n',
    );
    assert.ok((proxy!.counters.versions['1.24'] ?? 0) > before);
  });

  it('streams docker logs -f: a line arrives while the container has yet to print the next', async () => {
    await dockerOk(['run', '-d', '--name', 'ticker', 'busybox', 'sh', '-c', 'echo one; sleep 3; echo two; sleep 600']);
    const logs = follow(['logs', '-f', 'ticker']);
    await waitFor('"one" from docker logs -f', async () => logs.out().includes('one'), 10_000, 20);
    assert.ok(!logs.out().includes('two'), `not buffered until the end: ${logs.out()}`);
    await waitFor('"two" from docker logs -f', async () => logs.out().includes('two'), 10_000, 20);
    assert.equal(logs.child.exitCode, null, 'still following');
    logs.stop();
  });

  it("runs docker run -it in a pty: keystrokes go in, the shell's answers come back", async () => {
    const r = await run(['script', '-qfec', 'docker run -it --rm busybox sh', '/dev/null'], {
      env: env(),
      input: 'echo hi-$((6*7)); exit\n',
      timeoutMs: 60_000,
    });
    assert.match(r.stdout, /hi-42/, `${r.stdout}${r.stderr}`);
  });

  it('builds an image from a streamed context and runs it', async () => {
    const ctx = join(tmp, 'ctx');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox:latest\nRUN echo built > /built\n');
    await dockerOk(['build', '--network', 'none', '-t', 'proxy-built:1', ctx], { env: { DOCKER_BUILDKIT: '0' } });
    assert.equal(await dockerOk(['run', '--rm', 'proxy-built:1', 'cat', '/built']), 'built\n');
  });

  it('streams docker events: one from before --since, and one that happens while it follows', async () => {
    const since = String(Math.floor(Date.now() / 1000) - 1);
    await dockerOk(['create', '--name', 'evt0', 'busybox', 'true']);
    const events = follow([
      'events',
      '--since',
      since,
      '--filter',
      'type=container',
      '--format',
      '{{.Action}} {{.Actor.Attributes.name}}',
    ]);
    await waitFor('the past create in docker events', async () => events.out().includes('create evt0'), 10_000, 20);
    await dockerOk(['create', '--name', 'evt1', 'busybox', 'true']);
    await waitFor('the new create in docker events', async () => events.out().includes('create evt1'), 10_000, 20);
    assert.equal(events.child.exitCode, null, 'still following');
    events.stop();
  });

  it('lets an external adapter rewrite docker run: its pre-hook adds GREETING to the environment', async () => {
    assert.equal(await dockerOk(['run', '--rm', 'busybox', 'sh', '-c', 'echo $GREETING']), 'from-adapter\n');
  });

  it('fails docker run with one line naming a failing adapter, and creates nothing', async () => {
    const count = await containerCount();
    const cases: [typeof gate, RegExp][] = [
      ['fail', /HTTP 500: the gate is closed$/],
      ['garbage', /answered something that is not JSON: <html>surprise<\/html>$/],
      ['hang', /no answer within 2 s$/],
    ];
    try {
      for (const [mode, re] of cases) {
        gate = mode;
        const r = await docker(['run', '--rm', 'busybox', 'true']);
        assert.notEqual(r.code, 0, mode);
        const line = r.stderr.split('\n').find((l) => l.includes('Error response from daemon: '));
        assert.ok(line, `${mode}: ${r.stderr}`);
        assert.match(
          line,
          /Error response from daemon: powerstrip adapter "gate" \(http:\/\/127\.0\.0\.1:\d+\/gate\): /,
        );
        assert.match(line.replace(/\.$/, ''), re);
      }
    } finally {
      gate = 'pass';
    }
    assert.equal(await containerCount(), count, 'no container created');
  });

  it('carries several requests, hooked and not, on one keep-alive connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const call = (method: string, path: string, body?: object) =>
      new Promise<{ status: number; text: string; reused: boolean }>((resolve, reject) => {
        const data = body ? JSON.stringify(body) : undefined;
        const req = http.request(
          {
            socketPath: proxy!.socket,
            agent,
            method,
            path,
            headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
          },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text, reused: req.reusedSocket }));
          },
        );
        req.on('error', reject);
        req.end(data);
      });
    try {
      assert.deepEqual(await call('GET', '/_ping'), { status: 200, text: 'OK', reused: false });
      const created = await call('POST', '/v1.41/containers/create?name=kept', { Image: 'busybox', Cmd: ['true'] });
      assert.equal(created.status, 201, created.text);
      const inspect = await call('GET', '/v1.41/containers/kept/json');
      assert.ok(
        (JSON.parse(inspect.text) as { Config: { Env: string[] } }).Config.Env.includes('GREETING=from-adapter'),
      );
      const removed = await call('DELETE', '/v1.41/containers/kept');
      assert.equal(removed.status, 204);
      assert.deepEqual([created.reused, inspect.reused, removed.reused], [true, true, true]);
    } finally {
      agent.destroy();
    }
  });

  it("passes an older client's attach hijack (no Upgrade header) as raw bytes both ways", async () => {
    await dockerOk(['run', '-d', '-i', '--name', 'catter', 'busybox', 'cat']);
    const s = net.connect(proxy!.socket!);
    let got = Buffer.alloc(0);
    s.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
    try {
      s.write(
        'POST /v1.41/containers/catter/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n',
      );
      await waitFor('the hijacked attach answer', async () => got.includes('\r\n\r\n'));
      const head = got.subarray(0, got.indexOf('\r\n\r\n')).toString();
      assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(head, /\r\nContent-Type: application\/vnd\.docker\.raw-stream/i);
      s.write('ping-through-proxy\n');
      await waitFor('stdin echoed back by cat', async () => got.includes('ping-through-proxy\n'));
      assert.equal(proxy!.counters.hijacks, 1);
    } finally {
      s.destroy();
    }
  });

  it('listens on TCP as well when asked, loopback by default', async () => {
    const engine = `unix://${lab!.dockerds[0].socket}`;
    const p = await DockerProxy.listen({ engine, tcp: ':0', endpoints: [] });
    try {
      assert.match(p.tcpAddress!, /^127\.0\.0\.1:\d+$/);
      const r = await run(['docker', 'ps', '--format', '{{.Names}}'], {
        env: { DOCKER_HOST: `tcp://${p.tcpAddress}` },
        timeoutMs: 30_000,
      });
      assert.match(r.stdout, /^sleeper$/m, r.stderr);
    } finally {
      await p.close();
    }
  });

  it("answers in the engine's error shape when the engine is gone or a hooked body is too large", async () => {
    const dead = await DockerProxy.listen({
      engine: 'unix:///nonexistent/docker.sock',
      socket: join(tmp, 'dead.sock'),
      endpoints: [],
    });
    try {
      const r = await run(['docker', 'ps'], { env: { DOCKER_HOST: `unix://${dead.socket}` }, timeoutMs: 30_000 });
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        /Error response from daemon: cannot reach the Docker engine at unix:\/\/\/nonexistent\/docker\.sock \(ENOENT\)/,
      );
      // An upgrade (attach, exec start) gets the same answer, written on the raw connection.
      const s = net.connect(dead.socket!);
      let got = '';
      s.on('data', (c: Buffer) => (got += c));
      s.write(
        'POST /v1.41/exec/abc/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 2\r\n\r\n{}',
      );
      await new Promise((r) => s.once('close', r));
      assert.match(
        got,
        /^HTTP\/1\.1 502 Bad Gateway\r\nContent-Type: application\/json\r\n[\s\S]*\r\n\r\n\{"message":"cannot reach the Docker engine at /,
      );
    } finally {
      await dead.close();
    }
    const big = JSON.stringify({ Image: 'busybox', Labels: { big: 'x'.repeat(5 << 20) } });
    const res = await new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: proxy!.socket,
          method: 'POST',
          path: '/v1.41/containers/create',
          headers: { 'content-type': 'application/json', 'content-length': big.length },
        },
        (r) => {
          let text = '';
          r.on('data', (c: Buffer) => (text += c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, type: r.headers['content-type'] ?? '', text }));
        },
      );
      req.on('error', reject);
      req.end(big);
    });
    assert.equal(res.status, 413);
    assert.equal(res.type, 'application/json');
    assert.match((JSON.parse(res.text) as { message: string }).message, /^request body larger than 4194304 bytes/);
  });

  it('replaces a stale socket file, refuses a live socket or a plain file, and makes its socket 0660', async () => {
    assert.equal(statSync(proxy!.socket!).mode & 0o777, 0o660);
    const stale = join(tmp, 'stale.sock');
    // A process that dies while listening leaves its socket file behind.
    await run([
      process.execPath,
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`,
    ]);
    assert.ok(statSync(stale).isSocket());
    const p = await DockerProxy.listen({ engine: 'unix:///nonexistent/docker.sock', socket: stale, endpoints: [] });
    await p.close();
    assert.ok(!existsSync(stale), 'close() removes the socket file');
    await assert.rejects(
      DockerProxy.listen({ engine: 'unix:///nonexistent/docker.sock', socket: proxy!.socket!, endpoints: [] }),
      /already answers/,
    );
    const plain = join(tmp, 'plain');
    writeFileSync(plain, 'keep me');
    await assert.rejects(
      DockerProxy.listen({ engine: 'unix:///nonexistent/docker.sock', socket: plain, endpoints: [] }),
      /is not a socket/,
    );
    assert.ok(existsSync(plain));
    console.log(`      (proxy counters: ${JSON.stringify(proxy!.counters)})`);
  });
});
