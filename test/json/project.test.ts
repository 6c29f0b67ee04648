import { describe, expect, it } from 'vitest';
import { parseFieldPath } from '../../internal/json/pointer.js';
import { projectDocument, projectHot } from '../../internal/json/project.js';
import { serializeJson } from '../../internal/json/serialize.js';
import { decodeHotBlob, encodeHotBlob, splitDocument } from '../../internal/json/split.js';
import type { JsonObject } from '../../internal/json/value.js';
import { parse } from './helpers.js';

const DOC = parse(
  '{"id":12345678901234567890,"name":"x","stats":{"views":10,"likes":{"n":3}},"tags":["a"],"10":"ten"}',
) as JsonObject;

function fields(...list: string[]): string[][] {
  return list.map((f) => parseFieldPath(f, 'INVALID_FIELDS'));
}

function project(...list: string[]): string {
  return serializeJson(projectDocument(DOC, fields(...list)));
}

describe('projectDocument', () => {
  it('keeps only the requested fields, in the order requested', () => {
    expect(project('name', 'id')).toBe('{"name":"x","id":12345678901234567890}');
    expect(project('10', 'tags')).toBe('{"10":"ten","tags":["a"]}');
  });

  it('rebuilds nested paths as nested objects, merging siblings under their parent', () => {
    expect(project('/stats/views')).toBe('{"stats":{"views":10}}');
    expect(project('/stats/likes/n', 'name', '/stats/views')).toBe('{"stats":{"likes":{"n":3},"views":10},"name":"x"}');
  });

  it('leaves absent fields out, including paths through arrays and scalars', () => {
    expect(project('missing', '/stats/missing', '/tags/0', '/name/x')).toBe('{}');
    expect(project('missing', 'name')).toBe('{"name":"x"}');
    expect(project()).toBe('{}');
  });

  it('lets a requested ancestor carry requested descendants, whichever comes first', () => {
    expect(project('/stats/views', 'stats')).toBe('{"stats":{"views":10,"likes":{"n":3}}}');
    expect(project('stats', '/stats/views')).toBe('{"stats":{"views":10,"likes":{"n":3}}}');
  });

  it('does not mutate the document', () => {
    const before = serializeJson(DOC);
    project('/stats/views', 'stats', '/stats/likes/n');
    expect(serializeJson(DOC)).toBe(before);
  });
});

describe('projectHot', () => {
  const hotPaths = fields('stats', 'name', 'absent');
  const entries = decodeHotBlob(encodeHotBlob(splitDocument(DOC, hotPaths).hot));

  it('answers from hot entries when every field is or lies below a hot path', () => {
    expect(serializeJson(projectHot(entries, fields('name'))!)).toBe('{"name":"x"}');
    expect(serializeJson(projectHot(entries, fields('/stats/likes/n', 'name'))!)).toBe('{"stats":{"likes":{"n":3}},"name":"x"}');
    expect(serializeJson(projectHot(entries, fields('/stats/nothing'))!)).toBe('{}');
  });

  it('gives null when some field needs the cold part', () => {
    expect(projectHot(entries, fields('name', 'id'))).toBeNull();
    expect(projectHot(entries, fields('absent'))).toBeNull();
  });

  it('knows a hot field without an entry is absent when given the hot paths', () => {
    expect(serializeJson(projectHot(entries, fields('absent', 'name'), hotPaths)!)).toBe('{"name":"x"}');
    expect(projectHot(entries, fields('id'), hotPaths)).toBeNull();
  });

  it('answers like projectDocument for fields inside hot members', () => {
    const nested = fields('/stats/views', '/stats/likes');
    const deep = decodeHotBlob(encodeHotBlob(splitDocument(DOC, nested).hot));
    for (const request of [fields('/stats/views'), fields('/stats/likes/n', '/stats/views'), fields('/stats/likes')]) {
      expect(serializeJson(projectHot(deep, request)!)).toBe(serializeJson(projectDocument(DOC, request)));
    }
    expect(projectHot(deep, fields('stats'))).toBeNull(); // the rest of stats is cold
  });
});
