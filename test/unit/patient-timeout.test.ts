import assert from 'node:assert/strict';
import { patientTimeout } from '../../gossip/patient-timeout.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stall = (ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    /* the event loop is busy */
  }
};

async function abortedWithin(signal: AbortSignal, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!signal.aborted && Date.now() < deadline) await sleep(10);
  return signal.aborted;
}

describe('patient timeout (counts only the time we were running)', () => {
  it('fires after its time on an idle loop, with a TimeoutError', async () => {
    const t0 = Date.now();
    const { signal } = patientTimeout(500);
    assert.ok(await abortedWithin(signal, 3000), 'it fired');
    assert.ok(Date.now() - t0 >= 450, `not before its time: ${Date.now() - t0} ms`);
    assert.equal((signal.reason as Error).name, 'TimeoutError');
  });

  it('does not count a stall of the event loop', async () => {
    const { signal, clear } = patientTimeout(1000);
    stall(1500); // longer than the whole timeout, but we were not running
    await sleep(0);
    assert.equal(await abortedWithin(signal, 100), false, 'a stall of 1.5 s did not use up 1 s');
    assert.ok(await abortedWithin(signal, 4000), 'and it fires once 1 s of running time has passed');
    clear();
  });

  it('stops when cleared', async () => {
    const { signal, clear } = patientTimeout(200);
    clear();
    assert.equal(await abortedWithin(signal, 700), false);
  });
});
