import assert from 'node:assert/strict';
import { buildSanitized, runSanitized, type Sanitized } from './fixtures/sanitized.js';

// The native sleeve's segmentation and coalescing (native/src/offload.cc) under its property fuzzer
// (native/test/fuzz-offload.cc), built with AddressSanitizer and UBSan: hostile frames into Split
// checked against a model of offload.h; valid super-frames through Split, Coalescer and Split again;
// hostile segment streams into the Coalescer, each input coming out once, unchanged or re-split.
// A fixed seed, so a failure here fails the same way everywhere (and prints how to rerun its case).
const SEED = 1;
const ITERATIONS = 20_000; // ~11 s under ASan on 2 cores, after ~4 s of compiling
const SUMMARY = /^fuzz-offload: (\d+) cases, (\d+) segments checked, (\d+) coalesced writes, (\d+) malformed$/;

describe('offload fuzz (native Split and Coalescer, ASan + UBSan)', function () {
  this.timeout(120_000);
  let program: Sanitized;
  before(() => {
    program = buildSanitized('fuzz-offload', ['native/test/fuzz-offload.cc', 'native/src/offload.cc'], []);
  });
  after(() => program?.remove());

  it(`seed ${SEED}, ${ITERATIONS} cases: no malformed output, every check passes, all three kinds ran`, () => {
    const [cases, segments, coalesced, malformed] = runSanitized(
      program.bin,
      [String(SEED), String(ITERATIONS)],
      SUMMARY,
    );
    assert.equal(malformed, 0);
    assert.equal(cases, ITERATIONS);
    // This seed checks ~2.7 million segments and ~180 thousand coalesced writes (kinds b and c).
    assert.ok(segments > 1_500_000, `only ${segments} segments checked`);
    assert.ok(coalesced > 100_000, `only ${coalesced} coalesced writes`);
  });
});
