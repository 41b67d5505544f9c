import { option } from '../common/options.js';

const LABEL = /^([a-zA-Z0-9_.-]{1,63})=([^\s=]{1,253})$/;

/** `--label k=v`, repeatable; a bad one is refused at launch. */
export function parseLabel(text: string, prev: Record<string, string> = {}): Record<string, string> {
  const m = LABEL.exec(text);
  if (!m)
    throw new Error(
      `invalid --label "${text.slice(0, 80)}": expected KEY=VALUE (letters, digits, _ . - in the key; no spaces)`,
    );
  return { ...prev, [m[1]]: m[2] };
}

export const schedulerOptions = {
  labels: option<Record<string, string>>({
    flag: '--label <key=value>',
    help: "a host label for the scheduler's constraints and spread (repeatable; os and arch are read from the host)",
    default: {},
    parse: parseLabel,
  }),
};
