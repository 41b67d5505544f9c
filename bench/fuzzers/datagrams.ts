// Sends hostile datagrams to a router's data port, from wherever it runs (a lab host whose address
// is one of the router's peers, so they get past the sender check): random bytes, mutated VXLAN and
// relay frames, oversized and truncated ones, every header field at its limits.
// `node dist/bench/fuzzers/datagrams.js IP PORT VNI MTU COUNT SEED` prints how many it sent.
import dgram from 'node:dgram';
import { seededRandom } from './rand.js';

export function* hostileDatagrams(vni: number, mtu: number, seed: number): Generator<Buffer> {
  const rand = seededRandom(seed);
  const frame = (len: number) => {
    const f = Buffer.alloc(len);
    for (let i = 0; i < len; i++) f[i] = rand(256);
    f[0] &= 0xfe; // unicast destination, so it is not flooded everywhere
    return f;
  };
  const vxlan = (flags: number, v: number, f: Buffer) => {
    const h = Buffer.alloc(8);
    h[0] = flags;
    h.writeUIntBE(v & 0xffffff, 4, 3);
    return Buffer.concat([h, f]);
  };
  const relay = (hops: number, v: number, origin: bigint, f: Buffer) => {
    const h = Buffer.alloc(16);
    h[0] = 0x57;
    h[1] = hops;
    h.writeUIntBE(v & 0xffffff, 4, 3);
    h.writeBigUInt64BE(origin, 8);
    return Buffer.concat([h, f]);
  };
  const sizes = [
    0,
    1,
    7,
    8,
    13,
    14,
    15,
    21,
    22,
    60,
    mtu,
    mtu + 13,
    mtu + 14,
    mtu + 15,
    mtu + 18,
    mtu + 100,
    9000,
    65000,
  ];
  for (;;) {
    const size = sizes[rand(sizes.length)];
    switch (rand(6)) {
      case 0:
        yield frame(rand(2000));
        break; // random bytes
      case 1:
        yield vxlan(0x08, vni, frame(Math.max(0, size - 8)));
        break; // valid header, hostile sizes
      case 2:
        yield vxlan([0, 0x08, 0x09, 0x0c, 0xff][rand(5)], [0, vni, vni + 1, 0xffffff][rand(4)], frame(rand(200)));
        break; // header fields at limits
      case 3:
        yield relay(
          [0, 1, 32, 255][rand(4)],
          vni,
          [0n, 1n, 0xffffffffffffffffn][rand(3)],
          frame(Math.max(0, size - 16)),
        );
        break;
      case 4: {
        const d = vxlan(0x08, vni, frame(100));
        for (let k = rand(4) + 1; k > 0; k--) d[rand(d.length)] = rand(256);
        yield d;
        break;
      } // mutated
      default:
        yield vxlan(0x08, vni, frame(rand(14))); // truncated frames
    }
  }
}

const [ip, port, vni, mtu, count, seed] = process.argv.slice(2);
if (ip) {
  const sock = dgram.createSocket('udp4');
  const gen = hostileDatagrams(Number(vni), Number(mtu), Number(seed));
  let sent = 0;
  const next = () => {
    if (sent >= Number(count)) {
      sock.close();
      process.stdout.write(`${sent}\n`);
      return;
    }
    const d = gen.next().value as Buffer;
    sent++;
    sock.send(d.subarray(0, 65507), Number(port), ip, (err) =>
      err ? next() : sent % 64 ? next() : setImmediate(next),
    );
  };
  next();
}
