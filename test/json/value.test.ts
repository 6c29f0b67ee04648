import { describe, expect, it } from 'vitest';
import { serializeJson } from '../../internal/json/serialize.js';
import { JsonNumber, cloneJson, fromPlain, jsonEquals, numbersEqual, toPlain } from '../../internal/json/value.js';
import { expectStrataError, parse } from './helpers.js';

describe('jsonEquals', () => {
  it('compares numbers by value on their decimal text', () => {
    const equal: [string, string][] = [
      ['1', '1.0'],
      ['1', '10e-1'],
      ['1', '0.1E1'],
      ['100', '1e2'],
      ['100', '1E+2'],
      ['-0', '0'],
      ['0.0', '-0e10'],
      ['12345678901234567890', '1.234567890123456789e19'],
      ['1e99999999999999999999', '10e99999999999999999998'],
      ['0.000001', '1e-6'],
    ];
    for (const [a, b] of equal) expect(numbersEqual(a, b), `${a} = ${b}`).toBe(true);
    const different: [string, string][] = [
      ['1', '-1'],
      ['1', '1.0000000000000000001'],
      ['12345678901234567890', '12345678901234567891'], // equal as doubles, different as numbers
      ['1e400', '1e401'],
      ['0.1', '0.01'],
      ['10', '1'],
    ];
    for (const [a, b] of different) expect(numbersEqual(a, b), `${a} != ${b}`).toBe(false);
  });

  it('ignores member order and compares arrays element by element', () => {
    expect(jsonEquals(parse('{"a":1,"b":[1,{"c":null}]}'), parse('{"b":[1.0,{"c":null}],"a":1}'))).toBe(true);
    expect(jsonEquals(parse('[1,2]'), parse('[2,1]'))).toBe(false);
    expect(jsonEquals(parse('{"a":1}'), parse('{"a":1,"b":2}'))).toBe(false);
    expect(jsonEquals(parse('{"a":1,"b":2}'), parse('{"a":1,"c":2}'))).toBe(false);
    expect(jsonEquals(parse('"10"'), parse('10'))).toBe(false);
    expect(jsonEquals(parse('[]'), parse('{}'))).toBe(false);
    expect(jsonEquals(parse('null'), parse('false'))).toBe(false);
    expect(jsonEquals(parse('"a"'), parse('"a"'))).toBe(true);
  });
});

describe('fromPlain and toPlain', () => {
  it('converts plain values both ways', () => {
    const v = fromPlain({ a: 1, b: [true, null, 'x', -2.5], c: { d: {} } });
    expect(serializeJson(v)).toBe('{"a":1,"b":[true,null,"x",-2.5],"c":{"d":{}}}');
    expect(toPlain(v)).toEqual({ a: 1, b: [true, null, 'x', -2.5], c: { d: {} } });
  });

  it('keeps a member named __proto__ as data in toPlain', () => {
    const plain = toPlain(parse('{"__proto__":{"polluted":true}}')) as Record<string, unknown>;
    expect(Object.keys(plain)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses values with no JSON form', () => {
    expect(() => fromPlain(Number.NaN)).toThrow(TypeError);
    expect(() => fromPlain(() => 1)).toThrow(TypeError);
  });

  it('passes JsonNumbers and Maps through, bigints as their digits', () => {
    const v = fromPlain(new Map<string, unknown>([['n', new JsonNumber('1.0')], ['b', 12345678901234567890n]]));
    expect(serializeJson(v)).toBe('{"n":1.0,"b":12345678901234567890}');
  });
});

describe('tree depth ceiling', () => {
  it('answers DOCUMENT_TOO_DEEP instead of overflowing the stack for trees deeper than 1000', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 1500; i++) deep = [deep];
    expectStrataError(() => fromPlain(deep), 'DOCUMENT_TOO_DEEP');
    let v: JsonNumber | unknown[] = new JsonNumber('1');
    for (let i = 0; i < 1500; i++) v = [v];
    expectStrataError(() => serializeJson(v as never), 'DOCUMENT_TOO_DEEP');
    expectStrataError(() => cloneJson(v as never), 'DOCUMENT_TOO_DEEP');
  });

  it('handles trees 1000 deep', () => {
    let v: unknown = 1;
    for (let i = 0; i < 999; i++) v = [v];
    const tree = fromPlain(v);
    expect(serializeJson(cloneJson(tree))).toBe('['.repeat(999) + '1' + ']'.repeat(999));
    expect(jsonEquals(tree, cloneJson(tree))).toBe(true);
  });
});
