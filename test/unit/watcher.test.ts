import assert from 'node:assert/strict';
import { ContainerWatcher } from '../../docker/watcher.js';
import { FakeEngine, FakeHost } from '../fixtures/fake-engine.js';

const GRACE = 150;
const id = (n: number) => String(n).repeat(64).slice(0, 64); // a full container id

async function waitFor(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A running attached container, as weave run leaves it. */
function running(engine: FakeEngine, host: FakeHost, n: number): string {
  const c = id(n);
  engine.containers.set(c, { running: true, pid: 100 + n });
  host.attached.set(c, { cidrs: [`10.32.0.${n}/12`], mac: `02:00:00:00:00:0${n}` });
  host.held.set(c, [`10.32.0.${n}/12`]);
  return c;
}

describe('container events watcher (fake engine)', () => {
  let watcher: ContainerWatcher | undefined;
  afterEach(() => watcher?.stop());
  const start = async (engine: FakeEngine, host: FakeHost, retryMs = 50) => {
    watcher = new ContainerWatcher(engine, host, GRACE, retryMs);
    await watcher.start();
  };

  it('detaches a container that dies at once, and releases its address only after the grace period', async () => {
    const engine = new FakeEngine(),
      host = new FakeHost();
    const c = running(engine, host, 1);
    await start(engine, host);
    const t0 = Date.now();
    engine.emit(c, 'die');
    await waitFor('gone', () => host.did('gone', c));
    assert.ok(!host.did('release', c), 'not released at death');
    await waitFor('released', () => host.did('release', c));
    assert.ok(Date.now() - t0 >= GRACE, `released after ${Date.now() - t0} ms, not before the grace of ${GRACE} ms`);
    assert.equal(host.held.has(c), false);
  });

  it('re-attaches a container restarted within the grace, with its address and MAC, and never releases them', async () => {
    const engine = new FakeEngine(),
      host = new FakeHost();
    const c = running(engine, host, 2),
      witness = running(engine, host, 3);
    await start(engine, host);
    engine.emit(c, 'die');
    engine.emit(witness, 'die'); // dies at the same moment and stays dead: its release marks the grace as over
    await waitFor('gone', () => host.did('gone', c));
    engine.emit(c, 'start', 222);
    await waitFor('reattached', () => host.did('reattach', c));
    assert.deepEqual(
      host.calls.find((x) => x[0] === 'reattach'),
      ['reattach', c, 222, ['10.32.0.2/12'], '02:00:00:00:00:02'],
    );
    await waitFor('the witness released', () => host.did('release', witness));
    assert.ok(!host.did('release', c), 'the restarted container kept its address');
  });

  it('releases at once when a container is removed, and ignores containers weave never attached', async () => {
    const engine = new FakeEngine(),
      host = new FakeHost();
    const c = running(engine, host, 4);
    const stranger = id(5);
    engine.containers.set(stranger, { running: true, pid: 55 });
    await start(engine, host);
    engine.emit(stranger, 'die');
    engine.emit(stranger, 'destroy');
    engine.emit(c, 'die');
    engine.emit(c, 'destroy');
    await waitFor('released', () => host.did('release', c));
    assert.ok(
      !host.did('release', stranger) && !host.did('reattach', stranger),
      'nothing done for a container without addresses',
    );
  });

  it('on connecting, adopts running containers that kept ethwe, re-attaches ones that lost it, and starts the grace of stopped ones', async () => {
    const engine = new FakeEngine(),
      host = new FakeHost();
    const kept = id(6),
      lost = id(7),
      stopped = id(8);
    engine.containers.set(kept, { running: true, pid: 66 });
    engine.containers.set(lost, { running: true, pid: 77 });
    engine.containers.set(stopped, { running: false, pid: 0 });
    host.withEthwe.add(kept);
    for (const [c, n] of [
      [kept, 6],
      [lost, 7],
      [stopped, 8],
    ] as const)
      host.held.set(c, [`10.32.0.${n}/12`]);
    await start(engine, host);
    await waitFor('adopted and re-attached', () => host.did('adopt', kept) && host.did('reattach', lost));
    assert.ok(!host.did('reattach', kept), 'adopted, not attached again');
    assert.deepEqual(host.calls.find((x) => x[0] === 'reattach')!.slice(1, 4), [lost, 77, ['10.32.0.7/12']]);
    await waitFor('the stopped one released after its grace', () => host.did('release', stopped));
  });

  it('keeps trying an engine that is not there yet, and syncs once it answers', async () => {
    const engine = new FakeEngine(),
      host = new FakeHost();
    engine.up = false;
    const c = id(9);
    engine.containers.set(c, { running: true, pid: 99 });
    host.held.set(c, ['10.32.0.9/12']);
    await start(engine, host);
    assert.equal(host.calls.length, 0, 'nothing without an engine');
    engine.up = true;
    await waitFor('synced', () => host.did('reattach', c));
  });

  it('goes on handling other containers after a failure in one', async () => {
    const engine = new FakeEngine(),
      host = new FakeHost();
    const bad = running(engine, host, 1),
      good = running(engine, host, 2);
    host.failReattach.add(bad);
    await start(engine, host);
    engine.emit(bad, 'die');
    await waitFor('gone', () => host.did('gone', bad));
    engine.emit(bad, 'start', 11);
    await waitFor('tried', () => host.did('reattach', bad));
    engine.emit(good, 'die');
    engine.emit(good, 'destroy');
    await waitFor('the next container handled', () => host.did('release', good));
  });
});
