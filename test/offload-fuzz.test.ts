import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The native sleeve's segmentation and coalescing (native/src/offload.cc) under its property fuzzer
// (native/test/fuzz-offload.cc), built with AddressSanitizer and UBSan: hostile frames into Split
// checked against a model of offload.h; valid super-frames through Split, Coalescer and Split again;
// hostile segment streams into the Coalescer, each input coming out once, unchanged or re-split.
// A fixed seed, so a failure here fails the same way everywhere (and prints how to rerun its case).
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SEED = 1;
const ITERATIONS = 20_000; // ~11 s under ASan on 2 cores, after ~4 s of compiling
const SUMMARY = /^fuzz-offload: (\d+) cases, (\d+) segments checked, (\d+) coalesced writes, (\d+) malformed$/;

describe('offload fuzz (native Split and Coalescer, ASan + UBSan)', function () {
  this.timeout(120_000);
  let dir = '';
  let bin = '';

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'offload-fuzz-'));
    bin = join(dir, 'fuzz-offload');
    const flags = ['-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=all'];
    const cc = spawnSync('g++', [...flags, '-Wall', '-Wextra', 'native/test/fuzz-offload.cc', 'native/src/offload.cc', '-o', bin], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(cc.status, 0, `g++ failed:\n${cc.stderr}`);
    assert.equal(cc.stderr, '', 'g++ -Wall -Wextra warned');
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`seed ${SEED}, ${ITERATIONS} cases: no malformed output, every check passes, all three kinds ran`, function () {
    // Leak checking needs ptrace, which some CI sandboxes deny; the memory errors are what this is for.
    const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' };
    const r = spawnSync(bin, [String(SEED), String(ITERATIONS)], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 << 20, env });
    const why = `exit ${r.status ?? r.signal}\n${r.stderr.slice(0, 4000)}`;
    const m = SUMMARY.exec(r.stdout.trim().split('\n').at(-1) ?? '');
    assert.ok(m, `no summary line: ${why}`);
    const [cases, segments, coalesced, malformed] = m.slice(1).map(Number);
    assert.equal(malformed, 0, why);
    assert.equal(r.status, 0, why);
    assert.equal(r.stderr, '');
    assert.equal(cases, ITERATIONS);
    // This seed checks ~2.7 million segments and ~180 thousand coalesced writes (kinds b and c).
    assert.ok(segments > 1_500_000, `only ${segments} segments checked`);
    assert.ok(coalesced > 100_000, `only ${coalesced} coalesced writes`);
  });
});
