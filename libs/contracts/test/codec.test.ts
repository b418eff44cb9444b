import { describe, expect, it } from 'vitest';
import {
  CONTENT_TYPE_HEADER, JSON_TYPE, MSGPACK, TidemarkError, decode, decodeObject, encode, encodeForSubject, payloadEncoding, publishEncodingFor,
} from '../src/index.js';

const text = (s: string) => new TextEncoder().encode(s);
const header = (value: string) => ({ get: (name: string) => (name === CONTENT_TYPE_HEADER ? value : '') });

function failure(run: () => unknown): TidemarkError {
  try {
    run();
  } catch (error) {
    if (error instanceof TidemarkError) return error;
    throw error;
  }
  throw new Error('expected a TidemarkError');
}

describe('decodeObject: a payload that is not an object is named in the sender\'s terms', () => {
  const rows: ReadonlyArray<readonly [string, Uint8Array, string]> = [
    ['JSON null', text('null'), 'a command must be a JSON or msgpack object; got JSON null'],
    ['JSON null with blanks', text('  null\n'), 'a command must be a JSON or msgpack object; got JSON null'],
    ['JSON number', text('42'), 'a command must be a JSON or msgpack object; got a JSON number (42)'],
    ['JSON one-digit number', text('7'), 'a command must be a JSON or msgpack object; got a JSON number (7)'],
    ['JSON string', text('"backup"'), 'a command must be a JSON or msgpack object; got a JSON string'],
    ['JSON array', text('[{"kind":"base"}]'), 'a command must be a JSON or msgpack object; got a JSON array'],
    ['JSON true', text('true'), 'a command must be a JSON or msgpack object; got JSON true'],
    ['JSON false', text('false'), 'a command must be a JSON or msgpack object; got JSON false'],
    ['msgpack nil', encode(null), 'a command must be a JSON or msgpack object; got msgpack nil'],
    ['msgpack string', encode('backup'), 'a command must be a JSON or msgpack object; got a msgpack string'],
    ['msgpack array', encode([1, 2]), 'a command must be a JSON or msgpack object; got a msgpack array'],
    ['msgpack true', encode(true), 'a command must be a JSON or msgpack object; got msgpack true'],
    ['msgpack float', encode(1.5), 'a command must be a JSON or msgpack object; got a msgpack number (1.5)'],
    ['msgpack binary', encode(new Uint8Array([1, 2, 3])), 'a command must be a JSON or msgpack object; got msgpack binary data'],
  ];
  it.each(rows)('%s', (_name, payload, message) => {
    const error = failure(() => decodeObject(payload));
    expect(error.code).toBe('COMMAND_INVALID');
    expect(error.message).toBe(message);
  });

  it('says "event" and "request" for those', () => {
    expect(failure(() => decodeObject(text('null'), undefined, 'event')).message).toBe('an event must be a JSON or msgpack object; got JSON null');
    expect(failure(() => decodeObject(text('[]'), undefined, 'request')).message).toBe('a request must be a JSON or msgpack object; got a JSON array');
  });

  it('honours a content-type header over sniffing', () => {
    expect(failure(() => decodeObject(text('null'), header(JSON_TYPE))).message).toMatch(/got JSON null$/);
    expect(failure(() => decodeObject(encode(null), header(MSGPACK))).message).toMatch(/got msgpack nil$/);
  });

  it('decodes objects either way, and an empty payload as {}', () => {
    expect(decodeObject(text(' {"kind":"base"} '))).toEqual({ kind: 'base' });
    expect(decodeObject(encode({ kind: 'base' }))).toEqual({ kind: 'base' });
    expect(decodeObject(new Uint8Array())).toEqual({});
    expect(decodeObject(text('\n'))).toEqual({});
  });
});

describe('decode: what cannot be decoded at all', () => {
  const rows: ReadonlyArray<readonly [string, Uint8Array, RegExp]> = [
    ['broken JSON', text('{"kind":'), /^payload is not valid JSON: /],
    ['unquoted text', text('kind=base'), /^payload is not valid JSON: /],
    ['truncated msgpack', encode({ kind: 'base', reason: 'x'.repeat(40) }).slice(0, 10), /^payload is not valid msgpack: /],
    ['binary that is neither', new Uint8Array([0x01, 0xff, 0xfe, 0x00]), /^payload is neither JSON \(it is not UTF-8 text\) nor msgpack/],
    ['JSON declared, msgpack sent', encode({ a: 1 }), /^payload is not valid JSON: /],
  ];
  it.each(rows)('%s', (name, payload, message) => {
    const error = failure(() => decode(payload, name === 'JSON declared, msgpack sent' ? header(JSON_TYPE) : undefined));
    expect(error.code).toBe('COMMAND_UNDECODABLE');
    expect(error.message).toMatch(message);
  });
});

describe('publish encoding', () => {
  it('alerts are JSON whatever the deployment says; other events follow events.encoding (msgpack by default)', () => {
    expect(publishEncodingFor('alert.critical.backup_failed')).toBe('json');
    expect(publishEncodingFor('alert.warning.command_rejected', 'msgpack')).toBe('json');
    expect(publishEncodingFor('backup.failed.pg.main')).toBe('msgpack');
    expect(publishEncodingFor('backup.failed.pg.main', 'json')).toBe('json');
  });

  it('encodes with the matching content type, and the decoder reads both back', () => {
    const alert = encodeForSubject('alert.info.x', { summary: 'hi' }, 'msgpack');
    expect(alert.contentType).toBe(JSON_TYPE);
    expect(JSON.parse(new TextDecoder().decode(alert.data))).toEqual({ summary: 'hi' });
    const event = encodeForSubject('verify.passed.pg.main', { ok: true });
    expect(event.contentType).toBe(MSGPACK);
    expect(payloadEncoding(event.data)).toBe('msgpack');
    expect(decode(event.data)).toEqual({ ok: true });
    expect(payloadEncoding(alert.data)).toBe('json');
  });
});
