import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKOUT } from '../common/checkout.js';

export interface Asset {
  type: string;
  body: Buffer;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * The status page's files, served from the checkout's api/page/ whether the daemon runs from
 * source (tsx) or from dist/: tsc does not copy non-TypeScript files, and reading the source
 * tree keeps one copy. Read once at start: the page is a few KB and must be served fast.
 */
export function loadPageAssets(): Map<string, Asset> {
  const pageDir = join(CHECKOUT, 'api', 'page');
  const assets = new Map<string, Asset>();
  for (const [path, file] of [
    ['/', 'index.html'],
    ['/app.js', 'app.js'],
    ['/graph.js', 'graph.js'],
    ['/style.css', 'style.css'],
  ]) {
    const ext = file.slice(file.lastIndexOf('.'));
    assets.set(path, { type: TYPES[ext], body: readFileSync(join(pageDir, file)) });
  }
  return assets;
}
