import assert from 'node:assert/strict';
import { buildSanitized, runSanitized, type Sanitized } from './fixtures/sanitized.js';

// The native sleeve's sealed datagrams (native/src/seal.cc) under their test program
// (native/test/seal-test.cc), built with AddressSanitizer and UBSan: the RFC 8439 and GCM known
// answers; round trips through both ciphers, each datagram compared with a reference built on
// libcrypto directly (header, nonce and associated data as seal.h lays them out); forgeries (every
// single-bit flip, truncation, lengthening, another key or cipher) refused; and the replay window's
// every verdict compared with a model. A fixed seed, so a failure here fails the same way everywhere
// (and prints how to rerun its case).
const SEED = 1;
const ITERATIONS = 8_000; // ~4 s under ASan on 2 cores, after ~3 s of compiling
const SUMMARY = /^seal-test: (\d+) round trips, (\d+) tamperings rejected, (\d+) window checks, (\d+) failures$/;

describe('seal (native AEAD and replay window, ASan + UBSan)', function () {
  this.timeout(120_000);
  let program: Sanitized;
  before(() => {
    program = buildSanitized('seal-test', ['native/test/seal-test.cc', 'native/src/seal.cc'], ['-lcrypto']);
  });
  after(() => program?.remove());

  it(`seed ${SEED}, ${ITERATIONS} cases: known answers, round trips, forgeries refused, window as modelled`, () => {
    const [roundTrips, rejected, checks, failures] = runSanitized(
      program.bin,
      [String(SEED), String(ITERATIONS)],
      SUMMARY,
    );
    assert.equal(failures, 0);
    // This seed makes ~20 thousand round trips (1-4 a case), ~660 thousand forgeries and ~6.2 million
    // window checks; a forgery that opened, or a verdict off the model, would be a failure above.
    assert.ok(roundTrips > 16_000, `only ${roundTrips} round trips`);
    assert.ok(rejected > 500_000, `only ${rejected} forgeries rejected`);
    assert.ok(checks > 5_000_000, `only ${checks} window checks`);
  });
});
