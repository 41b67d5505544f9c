import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The native sleeve's sealed datagrams (native/src/seal.cc) under their test program
// (native/test/seal-test.cc), built with AddressSanitizer and UBSan: the RFC 8439 and GCM known
// answers; round trips through both ciphers, each datagram compared with a reference built on
// libcrypto directly (header, nonce and associated data as seal.h lays them out); forgeries (every
// single-bit flip, truncation, lengthening, another key or cipher) refused; and the replay window's
// every verdict compared with a model. A fixed seed, so a failure here fails the same way everywhere
// (and prints how to rerun its case).
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SEED = 1;
const ITERATIONS = 8_000; // ~4 s under ASan on 2 cores, after ~3 s of compiling
const SUMMARY = /^seal-test: (\d+) round trips, (\d+) tamperings rejected, (\d+) window checks, (\d+) failures$/;

describe('seal (native AEAD and replay window, ASan + UBSan)', function () {
  this.timeout(120_000);
  let dir = '';
  let bin = '';

  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'seal-test-'));
    bin = join(dir, 'seal-test');
    const flags = ['-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=all'];
    const cc = spawnSync('g++', [...flags, '-Wall', '-Wextra', 'native/test/seal-test.cc', 'native/src/seal.cc', '-lcrypto', '-o', bin], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(cc.status, 0, `g++ failed:\n${cc.stderr}`);
    assert.equal(cc.stderr, '', 'g++ -Wall -Wextra warned');
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`seed ${SEED}, ${ITERATIONS} cases: known answers, round trips, forgeries refused, window as modelled`, function () {
    // Leak checking needs ptrace, which some CI sandboxes deny; the memory errors are what this is for.
    const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' };
    const r = spawnSync(bin, [String(SEED), String(ITERATIONS)], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 << 20, env });
    const why = `exit ${r.status ?? r.signal}\n${r.stderr.slice(0, 4000)}`;
    const m = SUMMARY.exec(r.stdout.trim().split('\n').at(-1) ?? '');
    assert.ok(m, `no summary line: ${why}`);
    const [roundTrips, rejected, checks, failures] = m.slice(1).map(Number);
    assert.equal(failures, 0, why);
    assert.equal(r.status, 0, why);
    assert.equal(r.stderr, '');
    // This seed makes ~20 thousand round trips (1-4 a case), ~660 thousand forgeries and ~6.2 million
    // window checks; a forgery that opened, or a verdict off the model, would be a failure above.
    assert.ok(roundTrips > 16_000, `only ${roundTrips} round trips`);
    assert.ok(rejected > 500_000, `only ${rejected} forgeries rejected`);
    assert.ok(checks > 5_000_000, `only ${checks} window checks`);
  });
});
