#!/usr/bin/env node
// Tidemark's restore_command during a point-in-time restore:
//
//   node wal-fetch.mjs <source> <file> <path>        (restore_command = '... %f %p')
//
// <source> is the pg-agent's WAL server (http://127.0.0.1:PORT/TOKEN) or a file holding that URL
// (so the token never shows in `ps`). The agent decodes (decrypts, decompresses, checks) the WAL
// file from storage; this script only writes it to <path>, atomically (a temporary file renamed
// into place), so PostgreSQL never reads half a segment.
//
// Exit codes, as PostgreSQL reads them:
//   0    the file is in place;
//   1    the archive does not have it (PostgreSQL asks for files beyond the end of the archive and
//        for timeline history files that may not exist: this is how it finds the end);
//   200  anything else (the agent is gone, storage failed, the data did not verify). PostgreSQL
//        treats an exit code above 125 as fatal and aborts recovery, instead of taking the failure
//        for the end of the archive and promoting a server that is missing data.
//
// No dependencies: it runs as the postgres OS user with node's standard library only.
import { createWriteStream, readFileSync, renameSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { pipeline } from 'node:stream/promises';

const NOT_ARCHIVED = 1;
const FAILED = 200;
const IDLE_TIMEOUT_MS = 120_000;

const [source, file, path] = process.argv.slice(2);

function fail(message) {
  process.stderr.write(`tidemark-wal-fetch: ${file ?? '?'}: ${message}\n`);
  process.exit(FAILED);
}

if (!source || !file || !path) fail('usage: wal-fetch.mjs <url|url-file> <file> <path>');

let base;
try {
  base = source.startsWith('http://') ? source : readFileSync(source, 'utf8').trim();
} catch (error) {
  fail(`cannot read the WAL server address from ${source}: ${error.message}`);
}

const temporary = `${path}.tidemark-tmp`;
const request = get(`${base.replace(/\/+$/, '')}/${encodeURIComponent(file)}`, (response) => {
  // Only the WAL server's own "not archived" ends recovery; any other 404 is a failure.
  if (response.statusCode === 404 && response.headers['x-tidemark-wal'] === 'not-archived') {
    response.resume();
    process.exit(NOT_ARCHIVED);
  }
  if (response.statusCode !== 200) {
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk) => (body += chunk).length > 2000 && response.destroy());
    response.on('close', () => fail(`the pg-agent could not serve it (HTTP ${response.statusCode}): ${body.trim().slice(0, 2000) || 'no detail'}`));
    return;
  }
  const expected = Number(response.headers['content-length']);
  let received = 0;
  response.on('data', (chunk) => (received += chunk.length));
  pipeline(response, createWriteStream(temporary, { mode: 0o600 })).then(
    () => {
      if (!Number.isFinite(expected) || received !== expected) {
        rmSync(temporary, { force: true });
        fail(`received ${received} of ${expected} bytes; the pg-agent stopped sending (see its log)`);
      }
      renameSync(temporary, path);
      process.exit(0);
    },
    (error) => {
      rmSync(temporary, { force: true });
      fail(`the download broke off after ${received} bytes (${error.code ?? error.message}); the pg-agent reports why in its log`);
    },
  );
});
request.setTimeout(IDLE_TIMEOUT_MS, () => request.destroy(new Error(`no data for ${IDLE_TIMEOUT_MS / 1000} s`)));
request.on('error', (error) => {
  rmSync(temporary, { force: true });
  if (error.code === 'ECONNREFUSED') fail('the pg-agent serving this restore is gone (connection refused); the restore cannot continue');
  fail(error.message);
});
