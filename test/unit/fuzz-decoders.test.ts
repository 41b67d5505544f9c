import assert from 'node:assert/strict';
import { fuzzDecoders } from '../../bench/fuzzers/decoders.js';

describe('decoders under seeded mutation (a short run; bench/fuzz runs long)', () => {
  for (const seed of [1, 2]) {
    it(`crash nothing and keep working (seed ${seed})`, () => {
      for (const r of fuzzDecoders(5000, seed)) {
        assert.equal(r.crashes, 0, `${r.door}: ${r.firstCrash}`);
        assert.ok(r.still, `${r.door} still takes a valid input`);
      }
    });
  }
});
