import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './files.js';
import { log } from './log.js';

/** A replicated state's copy kept across restarts: written only when its content changes. */
export class JsonFile<T> {
  private written = '';

  /** Without a file nothing is kept. */
  constructor(private readonly file: string | undefined) {}

  /** Gives `apply` what was kept, if anything; unreadable, it is said in the log (peers send the state again). */
  load(apply: (saved: T) => void): void {
    if (!this.file || !existsSync(this.file)) return;
    try {
      apply(JSON.parse(readFileSync(this.file, 'utf8')) as T);
    } catch (err) {
      log.warn(`cannot read ${this.file}: ${(err as Error).message}; the cluster's state comes back from peers`);
    }
  }

  write(value: T): void {
    if (!this.file) return;
    const text = JSON.stringify(value);
    if (text === this.written) return;
    writeFileAtomic(this.file, text);
    this.written = text;
  }
}
