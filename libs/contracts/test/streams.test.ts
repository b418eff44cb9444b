// The JetStream layout: every persisted subject family lands in exactly one stream (NATS refuses
// overlapping streams, and a family in none is published into the void), while request/reply
// subjects and commands for engines without an agent are stored nowhere.
import { describe, expect, it } from 'vitest';
import {
  ALERT_KINDS, COMMAND_ENGINES, COMMANDS_STREAM, ENGINES, EVENTS_STREAM, MAX_COMMAND_BYTES, SEVERITIES, STREAMS, WAL_STREAM, subjectMatches, subjects,
  type StreamSpec,
} from '../src/index.js';

const streamsOf = (subject: string): string[] =>
  STREAMS.filter((stream) => stream.subjects.some((filter) => subjectMatches(filter, subject))).map((stream) => stream.name);

const scopedFamilies = [
  ['backupStarted', EVENTS_STREAM], ['backupCompleted', EVENTS_STREAM], ['backupFailed', EVENTS_STREAM],
  ['artifactStored', EVENTS_STREAM], ['artifactPruned', EVENTS_STREAM],
  ['verifyPassed', EVENTS_STREAM], ['verifyFailed', EVENTS_STREAM],
  ['restoreStarted', EVENTS_STREAM], ['restoreCompleted', EVENTS_STREAM], ['restoreFailed', EVENTS_STREAM],
  ['walArchived', WAL_STREAM], ['walProblem', WAL_STREAM],
] as const satisfies ReadonlyArray<readonly [keyof typeof subjects, StreamSpec]>;

describe('every subject family is stored in exactly one stream', () => {
  it.each(ENGINES.flatMap((engine) => scopedFamilies.map(([family, stream]) => [family, engine, stream] as const)))(
    '%s (%s) → %s',
    (family, engine, stream) => {
      expect(streamsOf(subjects[family](engine, 'main'))).toEqual([stream.name]);
    },
  );

  it.each(COMMAND_ENGINES)('commands for %s → the commands stream', (engine) => {
    expect(streamsOf(subjects.backupRequested(engine, 'main'))).toEqual([COMMANDS_STREAM.name]);
    expect(streamsOf(subjects.restoreRequested(engine, 'main'))).toEqual([COMMANDS_STREAM.name]);
  });

  it('every engine has an agent, so the commands of every engine are stored', () => {
    expect(ENGINES.filter((engine) => !COMMAND_ENGINES.includes(engine))).toEqual([]);
  });

  it.each(SEVERITIES.flatMap((severity) => ALERT_KINDS.map((kind) => [severity, kind] as const)))('alert %s %s → the events stream', (severity, kind) => {
    expect(streamsOf(subjects.alert(severity, kind))).toEqual([EVENTS_STREAM.name]);
  });

  it('command.rejected → the events stream', () => {
    expect(streamsOf(subjects.commandRejected())).toEqual([EVENTS_STREAM.name]);
  });

  it.each([subjects.catalogList(), subjects.catalogDescribe(), subjects.catalogTree(), subjects.catalogWal(), subjects.statusWal()])('request/reply %s is stored nowhere', (subject) => {
    expect(streamsOf(subject)).toEqual([]);
  });

  it.each([subjects.progress('backup', 'files', 'docs'), subjects.progress('restore', 'files', 'docs')])('progress %s is core NATS, stored nowhere', (subject) => {
    expect(streamsOf(subject)).toEqual([]);
  });

  it('the table covers every subject builder', () => {
    const covered = new Set<string>([
      ...scopedFamilies.map(([family]) => family), 'backupRequested', 'restoreRequested', 'alert', 'commandRejected',
      'catalogList', 'catalogDescribe', 'catalogTree', 'catalogWal', 'statusWal', 'progress',
    ]);
    expect(covered).toEqual(new Set(Object.keys(subjects)));
  });
});

describe('stream specs', () => {
  it('names are unique and no filter is listed twice', () => {
    expect(new Set(STREAMS.map((s) => s.name)).size).toBe(STREAMS.length);
    const filters = STREAMS.flatMap((s) => s.subjects);
    expect(new Set(filters).size).toBe(filters.length);
  });

  it('commands are a work queue that holds at most a command; events and WAL are kept by age', () => {
    expect(COMMANDS_STREAM).toMatchObject({ retention: 'workqueue', maxMsgSize: MAX_COMMAND_BYTES });
    expect(EVENTS_STREAM.retention).toBe('limits');
    expect(WAL_STREAM.retention).toBe('limits');
  });

  it.each(STREAMS.map((s) => [s.name, s] as const))('%s de-duplicates for a positive window within its age', (_name, stream) => {
    expect(stream.duplicateWindowSeconds).toBeGreaterThan(0);
    expect(stream.duplicateWindowSeconds).toBeLessThanOrEqual(stream.maxAgeSeconds);
  });
});
