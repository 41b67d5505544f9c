/** How often a patient timeout looks at the clock. */
const TICK_MS = 250;

/**
 * A timeout that counts only the time we were running: when our timer fires late (the event loop
 * was busy, or the process starved of CPU), the time beyond its due is not counted, as Liveness
 * does for peers. A connection that a hundred routers started at once are all handshaking on takes
 * a wall-clock 10-20 s to come up, though it gets its turn only now and then; on an idle machine, a
 * peer that never answers (a wrong password) is given up on after `ms`, as with a plain timeout.
 * `clear` stops the clock once what it guards is over.
 */
export function patientTimeout(ms: number): { signal: AbortSignal; clear(): void } {
  const ac = new AbortController();
  let left = ms,
    last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    left -= Math.min(now - last, TICK_MS * 1.5);
    last = now;
    if (left <= 0) {
      clearInterval(timer);
      ac.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError'));
    }
  }, TICK_MS);
  timer.unref();
  return { signal: ac.signal, clear: () => clearInterval(timer) };
}
