import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startApi } from '../../api/http.js';
import { registerGossip } from '../../common/subsystem.js';
import { Gossip } from '../../gossip/gossip.js';
import { Requests } from '../../gossip/requests.js';
import { peerKeySigner } from '../../gossip/signer.js';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { FakeNetwork } from '../fixtures/fake-gossip-net.js';
import { SHOUT, toySubsystem } from '../fixtures/toy-subsystem.js';

const post = (port: number, path: string, body: string) =>
  new Promise<number>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(body);
  });

describe('a subsystem is one file and one registration line', () => {
  it('gets its channel replicated, its requests answered and its route served', async () => {
    const net = new FakeNetwork();
    const signer = peerKeySigner(await generateKeyPair('Ed25519')); // direct requests are not signed: any key does
    const peers = ['a', 'b'].map((name) => {
      const node = net.node(name);
      return {
        name,
        gossip: new Gossip(node, () => {}, { antiEntropyMs: 50 }),
        requests: new Requests(node, name, signer, (p) => p),
        ...toySubsystem(name),
      };
    });
    for (const p of peers) {
      await registerGossip({ addChannel: (c) => p.gossip.addChannel(c), handle: (h) => p.requests.handle(h) }, [
        p.subsystem,
      ]); // the registration line
      await p.gossip.start();
    }
    net.link('a', 'b');
    const server = await startApi('127.0.0.1:0', { subsystems: [peers[0].subsystem], stop: () => {} });
    try {
      assert.equal(await post((server.address() as AddressInfo).port, '/toy/greet', '{"who":"b"}'), 200);
      const deadline = Date.now() + 5000;
      while (!peers[1].toy.set.items.has('b')) {
        if (Date.now() > deadline) throw new Error('the greeting never reached b');
        await new Promise((r) => setTimeout(r, 5));
      }
      const reply = await peers[1].requests.request('a', SHOUT.name, SHOUT.request.encode('hi').finish());
      assert.equal(SHOUT.reply.decode(reply), 'HI, b!');
    } finally {
      server.close();
      for (const p of peers) p.gossip.stop();
    }
  });
});
