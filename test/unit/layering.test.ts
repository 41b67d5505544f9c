import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkLayers,
  FREE,
  layerNames,
  layerOf,
  loops,
  order,
  parseLayers,
  readSources,
  type Layers,
} from '../fixtures/layers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOC = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');

/** The rows of the doc's picture of the layers, each as the folders drawn on it. */
function pictureFloors(doc: string): string[][] {
  const block = /^## The layers in a picture\n[\s\S]*?```text\n([\s\S]*?)```/m.exec(doc)?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => layerNames(l).sort())
    .filter((f) => f.length);
}

describe('layering', () => {
  const layers = parseLayers(DOC);

  it('holds in the tree: every import points down the table of docs/architecture.md, no file loop, nothing imports test/', () => {
    const sources = readSources(ROOT);
    assert.ok(sources.has('daemon/main.ts') && sources.has('cli/main.ts'), 'read the real tree');
    const folders = new Set([...sources.keys()].filter((f) => f.includes('/')).map(layerOf));
    assert.deepEqual(
      [...folders].filter((f) => !layers.has(f) && !FREE.includes(f)),
      [],
      'every folder is placed in the doc',
    );
    assert.deepEqual(checkLayers(sources, layers), []);
    assert.deepEqual(loops(sources), []);
  });

  it('the table allows nothing back up, and the doc draws its floors as they are', () => {
    const o = order(layers);
    assert.ok('floors' in o, `the table has a cycle among ${'cycle' in o ? o.cycle.join(', ') : ''}`);
    assert.deepEqual(pictureFloors(DOC), o.floors);
  });

  const table: Layers = new Map([
    ['daemon', ['*']],
    ['cli', ['contract']],
    ['router', ['gossip', 'common']],
    ['gossip', ['common']],
    ['common', ['contract']],
    ['contract', []],
    ['api', ['common', 'contract']],
  ]);

  it('catches an upward or sideways import, an import of test/, and a folder the doc does not place', () => {
    const sources = new Map([
      [
        'router/data-plane.ts',
        "import { BadRequest } from '../api/errors.js';\nimport { log } from '../common/log.js';",
      ],
      ['cli/main.ts', "import type { Report } from '../router/router.js';\nimport { x } from './client.js';"],
      ['gossip/x.ts', "export { y } from '../router/state.js';"],
      ['api/metrics.ts', "import '../gossip/service.js';"],
      ['common/lazy.ts', "const m = await import('../router/fast.js');"],
      ['router/fuzz.ts', "import { fuzz } from '../test/fuzz/decoders.js';"],
      ['bench/fuzz.ts', "import { fuzz } from '../test/fuzz/decoders.js';\nimport { Lab } from '../router/x.js';"],
      ['newroom/thing.ts', "import { log } from '../common/log.js';"],
      ['daemon/main.ts', "import { startApi } from '../api/http.js';"],
    ]);
    assert.deepEqual(checkLayers(sources, table), [
      { file: 'router/data-plane.ts', imports: 'api/errors.js' },
      { file: 'cli/main.ts', imports: 'router/router.js' },
      { file: 'gossip/x.ts', imports: 'router/state.js' },
      { file: 'api/metrics.ts', imports: 'gossip/service.js' },
      { file: 'common/lazy.ts', imports: 'router/fast.js' },
      { file: 'router/fuzz.ts', imports: 'test/fuzz/decoders.js' },
      { file: 'bench/fuzz.ts', imports: 'test/fuzz/decoders.js' },
      { file: 'newroom/thing.ts', imports: 'common/log.js' },
    ]);
  });

  it('catches a loop of files, type-only imports included, and a table that would allow an import back up', () => {
    const sources = new Map([
      ['router/datapath.ts', "import type { Counters } from './forwarder.js';"],
      ['router/forwarder.ts', "import type { Routing } from './routing.js';"],
      ['router/routing.ts', "import { x } from './datapath.js';"],
      ['router/bridge.ts', "import { y } from './routing.js';"],
      ['common/self.ts', "import { z } from './self.js';"],
    ]);
    assert.deepEqual(loops(sources), [
      ['router/datapath.ts', 'router/forwarder.ts', 'router/routing.ts'],
      ['common/self.ts'],
    ]);
    assert.deepEqual(order(new Map([...table, ['common', ['contract', 'router']]])), {
      cycle: ['router', 'gossip', 'common'],
    });
  });
});
