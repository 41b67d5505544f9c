import * as packet from 'dns-packet';

/** A UDP answer's limit without EDNS0 (RFC 1035 4.2.1). */
export const PLAIN_UDP = 512;
/** The most we send over UDP whatever a client advertises: beyond it, fragments that get lost (RFC 6891 6.2.5). */
export const MAX_UDP = 4096;
/** A message over TCP: its length is 16 bits. */
export const MAX_TCP = 65535;

/** The OPT record of our answers to EDNS0 queries: the most we send over UDP, no options. */
export const OUR_OPT: packet.OptAnswer = {
  type: 'OPT',
  name: '.',
  udpPayloadSize: MAX_UDP,
  extendedRcode: 0,
  ednsVersion: 0,
  flags: 0,
  flag_do: false,
  options: [],
};

/** A query's EDNS0 OPT record, if it has one. */
export function optOf(q: packet.Packet): packet.OptAnswer | undefined {
  return q.additionals?.find((a): a is packet.OptAnswer => a.type === 'OPT');
}

/** What a query lets us send back over UDP: 512 bytes without EDNS0, else its advertised size within 512..4096. */
export function udpLimit(q: packet.Packet): number {
  const opt = optOf(q);
  return opt ? Math.min(MAX_UDP, Math.max(PLAIN_UDP, opt.udpPayloadSize)) : PLAIN_UDP;
}

/**
 * A response in at most `limit` bytes: whole if it fits, else with TC set and as many of its answers as fit, in
 * order, whole records only (the additionals, our OPT record, are kept). Header, question and OPT always fit in 512.
 */
export function encodeWithin(response: packet.Packet, limit: number): Buffer {
  const whole = packet.encode(response);
  if (whole.length <= limit) return whole;
  const answers = response.answers ?? [];
  const truncated = (n: number) =>
    packet.encode({
      ...response,
      flags: (response.flags ?? 0) | packet.TRUNCATED_RESPONSE,
      answers: answers.slice(0, n),
    });
  // The most answers that fit: a binary search, since records differ in size (names are not compressed).
  let fits = 0,
    tooMany = answers.length;
  while (tooMany - fits > 1) {
    const n = (fits + tooMany) >> 1;
    if (truncated(n).length <= limit) fits = n;
    else tooMany = n;
  }
  return truncated(fits);
}
