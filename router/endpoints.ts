// The peers the data plane can send to: routers we hold a control connection with, and plain
// VXLAN endpoints named at launch (a kernel vxlan device or any RFC 7348 implementation).
export type EndpointKind = 'router' | 'vxlan';

export interface Endpoint {
  name: string;
  nickname: string;
  ip: string;
  /** Its VXLAN port. */
  port: number;
  /** Where its userspace takes relayed frames (the VXLAN port itself on a sleeve host). */
  sleevePort: number;
  /** The largest IP packet that reaches it: the smaller of our overlay MTU and its own. */
  mtu: number;
  kind: EndpointKind;
  tx: { frames: number; bytes: number };
  rx: { frames: number; bytes: number };
}

export function makeEndpoint(
  name: string,
  nickname: string,
  ip: string,
  port: number,
  kind: EndpointKind,
  mtu: number,
  sleevePort = port,
): Endpoint {
  return { name, nickname, ip, port, sleevePort, mtu, kind, tx: { frames: 0, bytes: 0 }, rx: { frames: 0, bytes: 0 } };
}

export class Endpoints {
  /** Datagrams are attributed by source IP alone: the kernel's vxlan sends from a hashed source port. */
  private readonly byIp = new Map<string, Endpoint>();
  private readonly byName = new Map<string, Endpoint>();
  list: Endpoint[] = [];

  /**
   * A second peer at an address another one has (a rogue control-plane peer on a router's host,
   * say) does not take the address's datagrams over: the first keeps them until it goes.
   */
  add(ep: Endpoint): void {
    this.remove(ep.name);
    if (!this.byIp.has(ep.ip)) this.byIp.set(ep.ip, ep);
    this.byName.set(ep.name, ep);
    this.list = [...this.byName.values()];
  }

  remove(name: string): Endpoint | undefined {
    const ep = this.byName.get(name);
    if (!ep) return undefined;
    this.byName.delete(name);
    this.list = [...this.byName.values()];
    if (this.byIp.get(ep.ip) === ep) {
      this.byIp.delete(ep.ip);
      const next = this.list.find((e) => e.ip === ep.ip);
      if (next) this.byIp.set(ep.ip, next);
    }
    return ep;
  }

  fromIp(ip: string): Endpoint | undefined {
    return this.byIp.get(ip);
  }
  named(name: string): Endpoint | undefined {
    return this.byName.get(name);
  }
}
