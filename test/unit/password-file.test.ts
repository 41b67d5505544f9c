import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPasswordFile } from '../../common/password-file.js';

describe('password file (--password-file, WEAVE_PASSWORD_FILE)', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'weave-password-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string, mode: number) => {
    const f = join(dir, name);
    writeFileSync(f, text, { mode });
    return f;
  };

  it('is the text less its trailing newline, spaces inside kept', () => {
    assert.equal(readPasswordFile(file('ok', 'two words\n', 0o600)), 'two words');
  });
  it('is refused when others than its owner may read it, saying how to fix it', () => {
    const f = file('open', 'secret\n', 0o644);
    assert.throws(() => readPasswordFile(f), {
      message: `the password file ${f} may be read by others (mode 644): chmod 600 ${f}`,
    });
  });
  it('is refused when empty or missing, in one line', () => {
    const f = file('empty', '\n', 0o600);
    assert.throws(() => readPasswordFile(f), { message: `the password file ${f} is empty` });
    assert.throws(() => readPasswordFile(join(dir, 'none')), {
      message: /^cannot read the password file .*none: ENOENT$/,
    });
  });
});
