// A service that cannot start: one JSON log line for collectors, and on a terminal also the
// reason as a sentence. The terminal decision is injected (unit), the pipe case is a real spawn.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { reportStartupFailure } from '@tidemark/runtime';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';

const SCHEDULER_MAIN = resolve(import.meta.dirname, '../../../services/scheduler/dist/main.js');
const reason = new TidemarkError('CONFIG_INVALID', 'tidemark.yaml: targets[0].postgres.port: expected a number, got string');

function capture(isTTY: boolean) {
  let text = '';
  return { output: { isTTY, write: (chunk: string) => (text += chunk) }, text: () => text };
}

describe('start-up failure report', () => {
  it('on a terminal: the JSON line, then the reason as a plain sentence', () => {
    const terminal = capture(true);
    reportStartupFailure('pg-agent', reason, terminal.output);
    const [json, sentence, rest] = terminal.text().split('\n');
    expect(JSON.parse(json as string)).toMatchObject({ level: 60, service: 'pg-agent', code: 'CONFIG_INVALID', msg: `pg-agent could not start: ${reason.message}` });
    expect(sentence).toBe(`tidemark pg-agent: cannot start: ${reason.message} [CONFIG_INVALID]`);
    expect(rest).toBe('');
  });

  it('not on a terminal: only the JSON line', () => {
    const pipe = capture(false);
    reportStartupFailure('pg-agent', reason, pipe.output);
    expect(pipe.text().endsWith('\n')).toBe(true);
    expect(pipe.text().trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(pipe.text())).toMatchObject({ level: 60, code: 'CONFIG_INVALID' });
  });

  describe('a real service with a bad config, stderr a pipe', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await makeTempDir('tidemark-run-main-');
    });
    afterAll(async () => {
      if (dir) await removeTempDir(dir);
    });

    it('exits 1 with exactly one JSON line naming the field', async () => {
      const config = join(dir, 'tidemark.yaml');
      await writeFile(config, 'targets:\n  - name: main\n    engine: pg\n    postgres: { host: db, port: nope, user: backup, database: app }\n');
      const child = spawn(process.execPath, [SCHEDULER_MAIN], { env: { PATH: process.env['PATH'], TIDEMARK_CONFIG: config }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((done) => child.once('exit', done));
      expect(code).toBe(1);
      const lines = stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] as string)).toMatchObject({ level: 60, service: 'scheduler', code: 'CONFIG_INVALID', msg: expect.stringContaining('targets[0].postgres.port: expected a number') });
    });
  });
});
