import { describe, expect, it } from 'vitest';
import { parseJson } from '../../internal/json/parse.js';
import { serializeJson } from '../../internal/json/serialize.js';
import { JsonNumber, isJsonObject } from '../../internal/json/value.js';
import { LIMITS_FOR_TESTS, expectStrataError, parse } from './helpers.js';

function roundTrip(text: string): string {
  return serializeJson(parse(text));
}

describe('parseJson round trips', () => {
  it('keeps member order exactly, integer-like names included', () => {
    const text = '{"b":1,"10":2,"a":3,"2":4,"1":5,"-1":6,"01":7}';
    expect(roundTrip(text)).toBe(text);
    const doc = parse(text);
    expect(isJsonObject(doc) && [...doc.keys()]).toEqual(['b', '10', 'a', '2', '1', '-1', '01']);
  });

  it('keeps number text exactly: 1.0, -0, 1E400, 1e-7, 0.10', () => {
    const text = '[1.0,-0,1E400,1e-7,0.10,-1.5E+3,0]';
    expect(roundTrip(text)).toBe(text);
  });

  it('keeps integers beyond 2^53 exactly', () => {
    const text = '{"id":12345678901234567890,"price":19.99,"big":-99999999999999999999999999999}';
    expect(roundTrip(text)).toBe(text);
    const doc = parse(text);
    expect(isJsonObject(doc) && doc.get('id')).toEqual(new JsonNumber('12345678901234567890'));
  });

  it('drops insignificant white space only', () => {
    expect(roundTrip(' \t\r\n{ "a" : [ 1 , { } , [ ] , "x y" ] ,\n"b":true,"c":false,"d":null } \n')).toBe(
      '{"a":[1,{},[],"x y"],"b":true,"c":false,"d":null}',
    );
  });

  it('keeps unicode names and values and reads every escape', () => {
    const doc = parse('{"héllo":"wörld ☃","\\u00e9":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001"}');
    expect(isJsonObject(doc) && [...doc.entries()]).toEqual([
      ['héllo', 'wörld ☃'],
      ['é', '"\\/\b\f\n\r\t\u0001'],
    ]);
    expect(serializeJson(doc)).toBe('{"héllo":"wörld ☃","é":"\\"\\\\/\\b\\f\\n\\r\\t\\u0001"}');
  });

  it('joins surrogate pairs from escapes and from raw UTF-8', () => {
    expect(parse('"\\ud83d\\ude00"')).toBe('😀');
    expect(parse(Buffer.from('"😀"', 'utf8'))).toBe('😀');
    expect(roundTrip('"\\ud83d\\ude00"')).toBe('"😀"');
  });

  it('accepts lone surrogates and writes them back escaped', () => {
    const v = parse('["\\ud800","\\udc00x","a\\uDFFF"]');
    expect(v).toEqual(['\ud800', '\udc00x', 'a\udfff']);
    const text = serializeJson(v);
    expect(text).toBe('["\\ud800","\\udc00x","a\\udfff"]');
    expect(serializeJson(parse(Buffer.from(text, 'utf8')))).toBe(text);
  });

  it('reads a member named __proto__ as an ordinary member', () => {
    const doc = parse('{"__proto__":{"x":1},"constructor":2}');
    expect(roundTrip('{"__proto__":{"x":1},"constructor":2}')).toBe('{"__proto__":{"x":1},"constructor":2}');
    expect(isJsonObject(doc) && doc.size).toBe(2);
  });

  it('parses scalars at the top level', () => {
    expect(parse('"x"')).toBe('x');
    expect(parse(' true ')).toBe(true);
    expect(parse('null')).toBe(null);
    expect(parse('-0.5e-3')).toEqual(new JsonNumber('-0.5e-3'));
  });

  it('ignores a leading byte order mark, counting it in offsets', () => {
    expect(roundTrip('\ufeff{"a":1}')).toBe('{"a":1}');
    expect(serializeJson(parse(Buffer.from([0xef, 0xbb, 0xbf, 0x5b, 0x5d])))).toBe('[]');
    expect(expectStrataError(() => parse(Buffer.from('\ufeff{"a":}', 'utf8')), 'INVALID_JSON')).toContain('at byte 8');
  });
});

describe('parseJson rejects malformed JSON with the byte offset', () => {
  const cases: [string, string][] = [
    ['{"a":1,"b":2,"c":}', "unexpected '}' at byte 17"],
    ['', 'unexpected end of input at byte 0'],
    ['   ', 'unexpected end of input at byte 3'],
    ['{', 'unexpected end of input'],
    ['[1,]', "unexpected ']' at byte 3"],
    ['{"a":1,}', "unexpected '}'"],
    ['{"a" 1}', "unexpected '1' at byte 5 (expected ':')"],
    ['{a:1}', "unexpected 'a' at byte 1 (expected a member name in double quotes)"],
    ['[1 2]', "unexpected '2' at byte 3 (expected ',' or ']')"],
    ['{"a":1 "b":2}', "unexpected '\"' at byte 7 (expected ',' or '}')"],
    ['{"a":1} x', "unexpected 'x' after the value at byte 8"],
    ['{} {}', "unexpected '{' after the value at byte 3"],
    ['01', "unexpected '1' after the value at byte 1"],
    ['-', 'unexpected end of input in a number at byte 1 (expected a digit)'],
    ['1.', 'at byte 2'],
    ['.5', "unexpected '.' at byte 0"],
    ['1e+', 'at byte 3'],
    ['+1', "unexpected '+' at byte 0"],
    ['NaN', "unexpected 'N'"],
    ['Infinity', "unexpected 'I'"],
    ['tru', "unexpected 't' at byte 0"],
    ['nul', "unexpected 'n'"],
    ["'a'", "unexpected ''' at byte 0"],
    ['"abc', 'unterminated string starting at byte 0'],
    ['["a\\"]', 'unterminated string starting at byte 1'],
    ['"a\nb"', 'unescaped control character U+000A in a string'],
    ['"a\tb"', 'U+0009'],
    ['"\\x"', "invalid escape '\\x' at byte 1"],
    ['"ab\\u12"', 'invalid \\u escape at byte 3 (expected 4 hex digits)'],
    ['"\\u00g0"', 'invalid \\u escape'],
    ['"\\', 'unterminated string'],
    ['[1,2', 'unexpected end of input at byte 4'],
    ['{"é":x}', "unexpected 'x' at byte 6"],
    ['\u00a0{}', 'unexpected character U+00A0 at byte 0'],
  ];
  for (const [text, expected] of cases) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      const message = expectStrataError(() => parse(text), 'INVALID_JSON');
      expect(message).toContain('body is not valid JSON: ');
      expect(message).toContain(expected);
    });
  }

  it('names the byte offset, not the character index, after multi-byte characters', () => {
    // "☃" is 3 bytes and "😀" 4 (two UTF-16 units): the '}' stands at character 10 but byte 14.
    const message = expectStrataError(() => parse(Buffer.from('{"☃":"😀",}', 'utf8')), 'INVALID_JSON');
    expect(message).toBe("body is not valid JSON: unexpected '}' at byte 14 (expected a member name in double quotes)");
  });

  it('says what was parsed when told', () => {
    const message = expectStrataError(() => parseJson('{', { ...LIMITS_FOR_TESTS, what: 'patch' }), 'INVALID_JSON');
    expect(message).toMatch(/^patch is not valid JSON: /);
  });

  it('refuses duplicate member names, naming the second one', () => {
    const message = expectStrataError(() => parse('{"a":1,"b":{"a":2},"a":3}'), 'INVALID_JSON');
    expect(message).toBe('body has a duplicate member name "a" at byte 19');
  });

  it('refuses duplicate member names that differ only in escaping', () => {
    expectStrataError(() => parse('{"é":1,"\\u00e9":2}'), 'INVALID_JSON');
  });

  it('refuses invalid UTF-8 in a Buffer, naming the byte', () => {
    const cases: [number[], number][] = [
      [[0x7b, 0x22, 0xc3, 0x28, 0x22], 2], // bad continuation
      [[0x22, 0x61, 0xc0, 0xaf, 0x22], 2], // overlong '/'
      [[0x22, 0xed, 0xa0, 0x80, 0x22], 1], // encoded surrogate
      [[0x22, 0xf4, 0x90, 0x80, 0x80, 0x22], 1], // beyond U+10FFFF
      [[0x22, 0xff, 0x22], 1],
      [[0x22, 0xe2, 0x98], 1], // truncated
    ];
    for (const [bytes, at] of cases) {
      const message = expectStrataError(() => parse(Buffer.from(bytes)), 'INVALID_JSON');
      expect(message).toBe(`body is not valid UTF-8: bad byte sequence at byte ${at}`);
    }
  });
});

describe('parseJson limits', () => {
  it('counts depth in objects and arrays, {} at the top being depth 1', () => {
    const limits = { depthMax: 3, membersMax: 100 };
    expect(serializeJson(parseJson('{"a":[{}]}', limits))).toBe('{"a":[{}]}');
    expect(serializeJson(parseJson('[[["x"]]]', limits))).toBe('[[["x"]]]');
    const message = expectStrataError(() => parseJson('{"a":[{"b":[]}]}', limits), 'DOCUMENT_TOO_DEEP');
    expect(message).toBe('body nests deeper than 3 levels at byte 11 (objects and arrays both count)');
    expect(parseJson('"scalar"', { depthMax: 0, membersMax: 0 })).toBe('scalar');
    expectStrataError(() => parseJson('{}', { depthMax: 0, membersMax: 0 }), 'DOCUMENT_TOO_DEEP');
  });

  it('stops 1,000,000 nested [ with DOCUMENT_TOO_DEEP quickly and without overflowing the stack', () => {
    const text = '['.repeat(1_000_000);
    // "Quickly" is shown by where it stops (byte 64 of a million), not by a stopwatch a busy machine could fail.
    const message = expectStrataError(() => parse(text), 'DOCUMENT_TOO_DEEP');
    expect(message).toContain('at byte 64');
    expectStrataError(() => parse('{"a":'.repeat(1_000_000)), 'DOCUMENT_TOO_DEEP');
  });

  it('parses deep documents up to the limit iteratively', () => {
    const depth = 900;
    const text = '['.repeat(depth) + ']'.repeat(depth);
    expect(serializeJson(parseJson(text, { depthMax: depth, membersMax: depth }))).toBe(text);
  });

  it('counts members and elements together against membersMax', () => {
    const limits = { depthMax: 10, membersMax: 5 };
    expect(serializeJson(parseJson('{"a":[1,2],"b":{"c":3}}', limits))).toBe('{"a":[1,2],"b":{"c":3}}');
    const message = expectStrataError(() => parseJson('{"a":[1,2],"b":{"c":3,"d":4}}', limits), 'TOO_MANY_FIELDS');
    expect(message).toBe('body has more than 5 members and elements in total at byte 22');
    expectStrataError(() => parseJson('[0,0,0,0,0,0]', limits), 'TOO_MANY_FIELDS');
    expect(parseJson('[[],{},[]]', { depthMax: 10, membersMax: 3 })).toBeDefined();
  });
});
