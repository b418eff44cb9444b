// Agents word their errors for whoever sent the command, and most senders write message fields
// (`nats pub … '{"overwrite":true}'`). A CLI user typed flags instead, so before the CLI prints an
// agent's error it names the flag that sets each field and the command that lists artifacts.
// Only people's output is translated: --json keeps the agent's words.
import type { Engine } from '@tidemark/contracts';

export interface CliScope {
  readonly engine: Engine;
  readonly target: string;
}

type Rewrite = readonly [pattern: RegExp, replacement: (scope: CliScope | undefined) => string];

const listCommand = (scope: CliScope | undefined): string => (scope ? `tidemark list ${scope.engine} ${scope.target}` : 'tidemark list');

// Longest phrases first: "set overwrite: true" must not become "set --overwrite: true".
const REWRITES: readonly Rewrite[] = [
  [/\bset overwrite(?:: true)?/g, () => 'add --overwrite'],
  [/\blist artifacts with (?:the catalog|catalog\.list)\b/g, (scope) => `list artifacts with \`${listCommand(scope)}\``],
  [/\bname one with artifactId\b/g, () => 'name one with --artifact <id>'],
  [/\bleave artifactId out\b/g, () => 'leave --artifact out'],
  [/\(artifactId\)/g, () => '(--artifact <id>)'],
  [/\bintoDirectory and intoPort instead of intoDatabase\b/g, () => '--into <dir>, <port> or <dir>:<port> instead of --into <database>'],
  [/\(intoCollection\)/g, () => '(--into <collection>)'],
  [/\banother intoDirectory\b/g, () => 'another --into <dir>'],
  [/\banother intoPort\b/g, () => 'another port with --into <port>'],
  [/\bpointInTime needs\b/g, () => '--to needs'],
  [/^pointInTime\.(?:time|lsn|restorePoint|latest|inclusive): /, () => '--to: '],
  [/^intoDatabase: /, () => '--into: '],
  [/^intoCollection: /, () => '--into: '],
  [/^intoDirectory: /, () => '--into <dir>: '],
  [/^intoPort: /, () => '--into <port>: '],
  [/^artifactId: /, () => '--artifact: '],
  [/^collections(?:\[\d+\])?: /, () => '--collection: '],
  [/^collection: /, () => '--collection: '],
  [/^reason: /, () => '--reason: '],
  [/^kind: /, () => '--kind: '],
];

/** `message` (an agent's error) in the terms of the tidemark CLI. */
export function inCliTerms(message: string, scope?: CliScope): string {
  return message
    .split('; ')
    .map((part) => REWRITES.reduce((text, [pattern, replacement]) => text.replace(pattern, () => replacement(scope)), part))
    .join('; ');
}
