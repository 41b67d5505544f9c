import { readFileSync, statSync } from 'node:fs';

/**
 * The password in a file, for a service that must not show it on a command line (`ps`) nor keep it
 * in a world-readable config: the file's whole text less its trailing newline. Refused, as ssh
 * refuses a private key, when anyone but its owner may read it.
 */
export function readPasswordFile(path: string): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the password file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (mode & 0o077)
    throw new Error(
      `the password file ${path} may be read by others (mode ${(mode & 0o777).toString(8)}): chmod 600 ${path}`,
    );
  const password = text.replace(/[\r\n]+$/, '');
  if (!password) throw new Error(`the password file ${path} is empty`);
  return password;
}
