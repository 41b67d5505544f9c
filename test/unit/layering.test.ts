import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkLayers, readSources } from '../fixtures/layers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('layering', () => {
  it('holds in the tree: cli speaks the contract only, api sees registrations, nothing imports cli or api', () => {
    const sources = readSources(ROOT);
    assert.ok(sources.has('router/daemon.ts') && sources.has('cli/main.ts'), 'read the real tree');
    assert.deepEqual(checkLayers(sources), []);
  });

  it('catches an upward or sideways import', () => {
    const sources = new Map([
      ['router/data-plane.ts', "import { BadRequest } from '../api/errors.js';\nimport { log } from '../common/log.js';"],
      ['cli/main.ts', "import type { Report } from '../router/router.js';\nimport { x } from './client.js';"],
      ['gossip/x.ts', "export { y } from '../ipam/state.js';"],
      ['api/metrics.ts', "import '../ipam/service.js';"],
      ['router/daemon.ts', "import { startApi } from '../api/http.js';"],
    ]);
    assert.deepEqual(checkLayers(sources), [
      { file: 'router/data-plane.ts', imports: 'api/errors.js' },
      { file: 'cli/main.ts', imports: 'router/router.js' },
      { file: 'gossip/x.ts', imports: 'ipam/state.js' },
      { file: 'api/metrics.ts', imports: 'ipam/service.js' },
    ]);
  });
});
