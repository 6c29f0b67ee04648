import { describe, expect, it } from 'vitest';
import {
  HOT_FIELD_LIST,
  PROJECTION_FIELD_LIST,
  formatFieldPath,
  formatPointer,
  parseFieldList,
  parseFieldPath,
  parseFieldPaths,
  parseJsonPointer,
} from '../../internal/json/pointer.js';
import { expectStrataError } from './helpers.js';

describe('parseFieldPath', () => {
  it('reads a plain name as the top-level member, verbatim', () => {
    expect(parseFieldPath('like_count', 'INVALID_HOT_FIELDS')).toEqual(['like_count']);
    expect(parseFieldPath('a/b~c', 'INVALID_HOT_FIELDS')).toEqual(['a/b~c']);
    expect(parseFieldPath(' x ', 'INVALID_HOT_FIELDS')).toEqual([' x ']);
  });

  it('reads a JSON Pointer with ~1 and ~0 unescaped in one pass', () => {
    expect(parseFieldPath('/stats/views', 'INVALID_FIELDS')).toEqual(['stats', 'views']);
    expect(parseFieldPath('/a~1b/m~0n', 'INVALID_FIELDS')).toEqual(['a/b', 'm~n']);
    expect(parseFieldPath('/~01', 'INVALID_FIELDS')).toEqual(['~1']);
    expect(parseFieldPath('/a//b/', 'INVALID_FIELDS')).toEqual(['a', '', 'b', '']);
  });

  it('refuses empty paths, "/" alone and bad escapes with the caller code', () => {
    expectStrataError(() => parseFieldPath('', 'INVALID_HOT_FIELDS'), 'INVALID_HOT_FIELDS');
    expectStrataError(() => parseFieldPath('/', 'INVALID_FIELDS'), 'INVALID_FIELDS');
    expect(expectStrataError(() => parseFieldPath('/a~2', 'INVALID_FIELDS'), 'INVALID_FIELDS')).toContain('~');
    expectStrataError(() => parseFieldPath('/a~', 'INVALID_FIELDS'), 'INVALID_FIELDS');
  });
});

describe('parseJsonPointer and formatPointer', () => {
  it('treats "" as the whole document and needs a leading slash otherwise', () => {
    expect(parseJsonPointer('', 'PATCH_FAILED')).toEqual([]);
    expect(parseJsonPointer('/', 'PATCH_FAILED')).toEqual(['']);
    expectStrataError(() => parseJsonPointer('a/b', 'PATCH_FAILED'), 'PATCH_FAILED');
  });

  it('formats canonical pointers that parse back to the same segments', () => {
    for (const segments of [[], ['a'], ['a', 'b'], ['a/b', '~', '~1', ''], ['é', '0']]) {
      const text = formatPointer(segments);
      expect(parseJsonPointer(text, 'PATCH_FAILED')).toEqual(segments);
    }
    expect(formatPointer(['a/b', 'c~d'])).toBe('/a~1b/c~0d');
  });

  it('shows top-level names plainly and everything else as a pointer', () => {
    expect(formatFieldPath(['like_count'])).toBe('like_count');
    expect(formatFieldPath(['stats', 'views'])).toBe('/stats/views');
    expect(formatFieldPath(['/odd'])).toBe('/~1odd');
    for (const s of [['like_count'], ['stats', 'views'], ['/odd'], ['a/b']]) {
      expect(parseFieldPath(formatFieldPath(s), 'INVALID_FIELDS')).toEqual(s);
    }
  });
});

describe('parseFieldList', () => {
  it('splits on commas before percent-decoding, so %2C stays inside a name', () => {
    expect(parseFieldList('a,/b/c,x%2Cy,%2Fp%2Fq', 'INVALID_FIELDS', PROJECTION_FIELD_LIST)).toEqual([
      ['a'],
      ['b', 'c'],
      ['x,y'],
      ['p', 'q'],
    ]);
  });

  it('decodes + as a space and %2B as a plus, like a form-encoded query', () => {
    expect(parseFieldList('a+b,c%2Bd,%C3%A9', 'INVALID_FIELDS', PROJECTION_FIELD_LIST)).toEqual([['a b'], ['c+d'], ['é']]);
  });

  it('reads an empty value as an empty list and refuses empty entries', () => {
    expect(parseFieldList('', 'INVALID_FIELDS', PROJECTION_FIELD_LIST)).toEqual([]);
    expectStrataError(() => parseFieldList('a,,b', 'INVALID_FIELDS', PROJECTION_FIELD_LIST), 'INVALID_FIELDS');
    expectStrataError(() => parseFieldList('a,', 'INVALID_FIELDS', PROJECTION_FIELD_LIST), 'INVALID_FIELDS');
  });

  it('refuses malformed percent-encoding', () => {
    expectStrataError(() => parseFieldList('a%2', 'INVALID_FIELDS', PROJECTION_FIELD_LIST), 'INVALID_FIELDS');
    expectStrataError(() => parseFieldList('%C3%28', 'INVALID_FIELDS', PROJECTION_FIELD_LIST), 'INVALID_FIELDS');
  });

  it('removes duplicates, a plain name and its pointer being one path', () => {
    expect(parseFieldList('a,/a,b,a', 'INVALID_HOT_FIELDS', HOT_FIELD_LIST)).toEqual([['a'], ['b']]);
  });

  it('drops descendants of listed paths only when asked', () => {
    const raw = '/stats/views,likes,/stats,/stats/x/y,/statsx';
    expect(parseFieldList(raw, 'INVALID_HOT_FIELDS', HOT_FIELD_LIST)).toEqual([['likes'], ['stats'], ['statsx']]);
    expect(parseFieldList(raw, 'INVALID_FIELDS', PROJECTION_FIELD_LIST)).toHaveLength(5);
  });

  it('enforces the count and path length limits', () => {
    const many = Array.from({ length: 65 }, (_, i) => `f${i}`).join(',');
    expect(expectStrataError(() => parseFieldList(many, 'INVALID_HOT_FIELDS', HOT_FIELD_LIST), 'INVALID_HOT_FIELDS')).toContain(
      'at most 64',
    );
    expect(parseFieldList(many.split(',').slice(0, 64).join(','), 'INVALID_HOT_FIELDS', HOT_FIELD_LIST)).toHaveLength(64);
    const long = 'x'.repeat(513);
    expectStrataError(() => parseFieldList(long, 'INVALID_HOT_FIELDS', HOT_FIELD_LIST), 'INVALID_HOT_FIELDS');
    expect(parseFieldPaths(['é'.repeat(256)], 'INVALID_HOT_FIELDS', HOT_FIELD_LIST)).toHaveLength(1); // 512 bytes
    expectStrataError(() => parseFieldPaths(['é'.repeat(257)], 'INVALID_HOT_FIELDS', HOT_FIELD_LIST), 'INVALID_HOT_FIELDS');
  });
});
