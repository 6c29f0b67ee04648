import { describe, expect, it } from 'vitest';
import { applyMergePatch } from '../../internal/json/patch.js';
import { serializeJson } from '../../internal/json/serialize.js';
import { parse } from './helpers.js';

function mergePatch(doc: string, patch: string): string {
  return serializeJson(applyMergePatch(parse(doc), parse(patch)));
}

describe('JSON Merge Patch (RFC 7396)', () => {
  it('applies the example of section 3', () => {
    const target = '{"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},"tags":["example","sample"],"content":"This will be unchanged"}';
    const patch = '{"title":"Hello!","phoneNumber":"+01-123-456-7890","author":{"familyName":null},"tags":["example"]}';
    expect(mergePatch(target, patch)).toBe(
      '{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}',
    );
  });

  const examples: [string, string, string][] = [
    ['{"a":"b"}', '{"a":"c"}', '{"a":"c"}'],
    ['{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'],
    ['{"a":"b"}', '{"a":null}', '{}'],
    ['{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'],
    ['{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'],
    ['{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'],
    ['{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'],
    ['{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'],
    ['["a","b"]', '["c","d"]', '["c","d"]'],
    ['{"a":"b"}', '["c"]', '["c"]'],
    ['{"a":"foo"}', 'null', 'null'],
    ['{"a":"foo"}', '"bar"', '"bar"'],
    ['{"e":null}', '{"a":1}', '{"e":null,"a":1}'],
    ['[1,2]', '{"a":"b","c":null}', '{"a":"b"}'],
    ['{}', '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'],
  ];
  for (const [target, patch, result] of examples) {
    it(`merges ${patch} into ${target}`, () => {
      expect(mergePatch(target, patch)).toBe(result);
    });
  }

  it('keeps member order, number text and nulls inside arrays', () => {
    expect(mergePatch('{"10":1.0,"2":{"x":-0},"a":1}', '{"2":{"y":12345678901234567890},"b":[null,1.50]}')).toBe(
      '{"10":1.0,"2":{"x":-0,"y":12345678901234567890},"a":1,"b":[null,1.50]}',
    );
  });

  it('never mutates the target or the patch', () => {
    const target = parse('{"a":{"b":1,"c":{"d":2}},"e":[1]}');
    const patch = parse('{"a":{"b":null,"c":{"x":3}},"e":null,"f":{"g":null,"h":1}}');
    const [t, p] = [serializeJson(target), serializeJson(patch)];
    expect(serializeJson(applyMergePatch(target, patch))).toBe('{"a":{"c":{"d":2,"x":3}},"f":{"h":1}}');
    expect(serializeJson(target)).toBe(t);
    expect(serializeJson(patch)).toBe(p);
  });
});
