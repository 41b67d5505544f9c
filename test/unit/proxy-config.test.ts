import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HookError, type Adapter, type HookedEndpoint } from '../../docker/proxy/hooks.js';
import { compileRoutes, hooksFor } from '../../docker/proxy/match.js';
import { mergeEndpoints, parseAdapterConfig, powerstripAdapter } from '../../docker/proxy/powerstrip.js';

const adapter = (name: string): Adapter => ({ name, pre: async (r) => r, post: async (_q, r) => r });
const weave = adapter('weave');
const names = (l: Adapter[] | undefined) => l?.map((a) => a.name);

describe('Docker API proxy: adapter config and endpoint matching', () => {
  describe('matching', () => {
    const routes = compileRoutes([
      { method: 'POST', pattern: '/containers/create', pre: [weave], post: [] },
      { method: 'post', pattern: '/*/containers/*/start', pre: [], post: [weave] },
    ]);
    const hooked = (method: string, url: string) => hooksFor(routes, method, url) !== undefined;

    it('ignores the API version prefix, the query string and the case of the method', () => {
      assert.ok(hooked('POST', '/v1.43/containers/abc/start'));
      assert.ok(hooked('POST', '/containers/abc/start'));
      assert.ok(hooked('POST', '/containers/create?name=x'));
      assert.ok(hooked('POST', '/v1.41/containers/create?name=x&platform='));
      assert.ok(hooked('post', '/v1/containers/create'));
      assert.deepEqual(names(hooksFor(routes, 'POST', '/v1.43/containers/abc/start')?.post), ['weave']);
    });

    it('does not match another method, another path, or * across segments', () => {
      assert.ok(!hooked('GET', '/containers/create'));
      assert.ok(!hooked('GET', '/v1.43/containers/abc/start'));
      assert.ok(!hooked('POST', '/v1.43/containers/abc/stop'));
      assert.ok(!hooked('POST', '/containers/a/b/start'));
      assert.ok(!hooked('POST', '/containers//start'));
      assert.ok(!hooked('POST', '/v1.41/containers/create/extra'));
      assert.ok(!hooked('GET', '/_ping'));
    });

    it('runs the hooks of every matching endpoint, each adapter once', () => {
      const a = adapter('a');
      const r = compileRoutes([
        { method: 'POST', pattern: '/containers/*/start', pre: [a], post: [weave] },
        { method: 'POST', pattern: '/containers/web/start', pre: [a, weave], post: [] },
      ]);
      assert.deepEqual(names(hooksFor(r, 'POST', '/v1.41/containers/web/start')?.pre), ['a', 'weave']);
      assert.deepEqual(names(hooksFor(r, 'POST', '/v1.41/containers/db/start')?.pre), ['a']);
    });
  });

  describe('mergeEndpoints', () => {
    it("puts the built-in hooks first, then the file's, per endpoint, and runs an adapter named twice once", () => {
      const flocker = adapter('flocker');
      const builtIn: HookedEndpoint[] = [
        { method: 'POST', pattern: '/containers/create', pre: [weave], post: [] },
        { method: 'POST', pattern: '/containers/*/start', pre: [], post: [weave] },
      ];
      const file: HookedEndpoint[] = [
        { method: 'POST', pattern: '/*/containers/create', pre: [flocker, weave], post: [] },
        { method: 'DELETE', pattern: '/*/containers/*', pre: [flocker], post: [] },
      ];
      const merged = mergeEndpoints(builtIn, file);
      assert.deepEqual(
        merged.map((e) => [e.method, e.pattern, names(e.pre), names(e.post)]),
        [
          ['POST', '/containers/create', ['weave', 'flocker'], []],
          ['POST', '/containers/*/start', [], ['weave']],
          ['DELETE', '/containers/*', ['flocker'], []],
        ],
      );
    });
  });

  describe('adapters file', () => {
    const FILE = 'adapters.yml';
    const parse = (text: string) => parseAdapterConfig(text, FILE, { weave });
    const fails = (text: string, re: RegExp) =>
      assert.throws(
        () => parse(text),
        (err: Error) => {
          assert.match(err.message, re);
          assert.equal(err.message.split('\n').length, 1, err.message);
          return true;
        },
      );

    it("reads Powerstrip's adapters.yml: built-in and external adapters by name", () => {
      const eps = parse(
        [
          'version: 1',
          'endpoints:',
          '  "POST /*/containers/create":',
          '    pre: [weave, flocker]',
          '  "POST /*/containers/*/start":',
          '    post: [weave]',
          'adapters:',
          '  flocker: http://127.0.0.1:9000/flocker-adapter',
          '',
        ].join('\n'),
      );
      assert.deepEqual(
        eps.map((e) => [e.method, e.pattern, names(e.pre), names(e.post)]),
        [
          ['POST', '/*/containers/create', ['weave', 'flocker'], []],
          ['POST', '/*/containers/*/start', [], ['weave']],
        ],
      );
      assert.equal(eps[0].pre[0], weave);
      assert.equal(typeof eps[0].pre[1].pre, 'function');
    });

    it('takes an empty file, or one with empty sections, as no endpoints', () => {
      assert.deepEqual(parse(''), []);
      assert.deepEqual(parse('# nothing yet\n'), []);
      assert.deepEqual(parse('version: 1\nendpoints:\nadapters:\n'), []);
    });

    it('names the file, line and column of each mistake, on one line', () => {
      fails(
        'version: 1\nendpoints:\n  "POST /*/containers/create":\n    pre: [weave, nosuch]\n',
        /^adapters\.yml:4:18: endpoint "POST \/\*\/containers\/create": unknown adapter "nosuch" \(known: weave\)$/,
      );
      fails('version: 1\nendpoints:\n  "POST /x":\n    pre: [weave\n', /^adapters\.yml:\d+:\d+: /);
      fails(
        'version: 1\nendpoints:\n  "POST /x": {pre: [weave]}\n  "POST /x": {post: [weave]}\n',
        /^adapters\.yml:4:3: .*unique/i,
      );
      fails('version: 2\n', /^adapters\.yml:1:10: version must be 1/);
      fails(
        'version: 1\nendpoint:\n',
        /^adapters\.yml:2:1: unknown key "endpoint" \(expected version, endpoints, adapters\)$/,
      );
      fails('endpoints:\n  "FETCH /x":\n    pre: [weave]\n', /^adapters\.yml:2:3: invalid endpoint "FETCH \/x"/);
      fails('endpoints:\n  "POST containers/create":\n    pre: [weave]\n', /^adapters\.yml:2:3: invalid endpoint/);
      fails(
        'endpoints:\n  "POST /x":\n    before: [weave]\n',
        /^adapters\.yml:3:5: endpoint "POST \/x": unknown key "before" \(expected pre, post\)$/,
      );
      fails(
        'endpoints:\n  "POST /x":\n    pre: weave\n',
        /^adapters\.yml:3:10: endpoint "POST \/x": pre must be a list of adapter names$/,
      );
      fails(
        'adapters:\n  flocker: https://127.0.0.1:9000/a\n',
        /^adapters\.yml:2:12: adapter "flocker": https is not supported, only http:\/\/$/,
      );
      fails('adapters:\n  flocker: not a url\n', /^adapters\.yml:2:12: adapter "flocker": invalid URL/);
      fails('adapters:\n  weave: http://127.0.0.1:1/\n', /^adapters\.yml:2:3: adapter "weave" is built in/);
      fails('- a\n- b\n', /^adapters\.yml:1:1: expected a mapping/);
    });
  });

  describe('Powerstrip protocol client', () => {
    let server: http.Server;
    let url: string;
    let answer: (body: Record<string, unknown>, res: http.ServerResponse) => void;
    const seen: Record<string, unknown>[] = [];
    before(async () => {
      server = http.createServer((req, res) => {
        let text = '';
        req.on('data', (c: Buffer) => (text += c));
        req.on('end', () => {
          const body = JSON.parse(text) as Record<string, unknown>;
          seen.push(body);
          answer(body, res);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/adapter`;
    });
    after(() => {
      server.closeAllConnections();
      server.close();
    });

    const json = (res: http.ServerResponse, v: unknown, status = 200) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    const req = { Method: 'POST', Request: '/v1.41/containers/create?name=x', Body: '{"Image":"busybox"}' };

    it('sends pre-hook and post-hook requests in protocol version 1 and takes the modified request and response', async () => {
      answer = (b, res) =>
        json(
          res,
          b.Type === 'pre-hook'
            ? {
                PowerstripProtocolVersion: 1,
                ModifiedClientRequest: { ...(b.ClientRequest as object), Body: '{"Image":"other"}' },
              }
            : { PowerstripProtocolVersion: 1, ModifiedServerResponse: { ...(b.ServerResponse as object), Code: 202 } },
        );
      const a = powerstripAdapter('flocker', url);
      assert.deepEqual(await a.pre!(req), { ...req, Body: '{"Image":"other"}' });
      const res = { ContentType: 'application/json', Body: '{"Id":"abc"}', Code: 201 };
      assert.deepEqual(await a.post!(req, res), { ...res, Code: 202 });
      assert.deepEqual(seen.slice(-2), [
        { PowerstripProtocolVersion: 1, Type: 'pre-hook', ClientRequest: req },
        { PowerstripProtocolVersion: 1, Type: 'post-hook', ClientRequest: req, ServerResponse: res },
      ]);
    });

    it('turns errors, garbage, wrong versions, missing fields and silence into HookErrors naming the adapter', async () => {
      const a = powerstripAdapter('flocker', url, { timeoutMs: 300 });
      const rejects = async (respond: typeof answer, re: RegExp, status = 500) => {
        answer = respond;
        await assert.rejects(a.pre!(req), (err: Error) => {
          assert.ok(err instanceof HookError, String(err));
          assert.equal(err.status, status);
          assert.match(err.message, /^powerstrip adapter "flocker" \(http:\/\/127\.0\.0\.1:\d+\/adapter\): /);
          assert.match(err.message, re);
          return true;
        });
      };
      await rejects((_b, res) => json(res, { message: 'volume busy\nmore' }, 500), /HTTP 500: volume busy$/);
      await rejects((_b, res) => json(res, { message: 'no such volume' }, 409), /HTTP 409: no such volume$/, 409);
      await rejects((_b, res) => {
        res.writeHead(200);
        res.end('<html>');
      }, /not JSON: <html>$/);
      await rejects((_b, res) => json(res, { PowerstripProtocolVersion: 2 }), /protocol version 2, expected 1$/);
      await rejects(
        (_b, res) => json(res, { PowerstripProtocolVersion: 1, ModifiedClientRequest: { Method: 'POST' } }),
        /no valid ModifiedClientRequest/,
      );
      await rejects(() => {
        /* never answers */
      }, /no answer within 0\.3 s$/);
      await assert.rejects(
        powerstripAdapter('gone', 'http://127.0.0.1:1/x').pre!(req),
        /powerstrip adapter "gone" .*cannot reach it: ECONNREFUSED/,
      );
    });
  });
});
