import { describe, expect, it, vi } from 'vitest';
import { applyJsonPatch, patchTouchedPointers } from '../../internal/json/patch.js';
import { serializeJson } from '../../internal/json/serialize.js';
import { jsonEquals, type JsonValue } from '../../internal/json/value.js';
import { expectStrataError, parse } from './helpers.js';

/** Applies a patch to a document given as text and returns the canonical text of the result. */
function patch(doc: string, ops: string): string {
  return serializeJson(applyJsonPatch(parse(doc), parse(ops)));
}

function patchFails(doc: string, ops: string): string {
  return expectStrataError(() => applyJsonPatch(parse(doc), parse(ops)), 'PATCH_FAILED');
}

describe('JSON Patch: RFC 6902 appendix A examples', () => {
  it('A.1 adds an object member', () => {
    expect(patch('{"foo":"bar"}', '[{"op":"add","path":"/baz","value":"qux"}]')).toBe('{"foo":"bar","baz":"qux"}');
  });

  it('A.2 adds an array element', () => {
    expect(patch('{"foo":["bar","baz"]}', '[{"op":"add","path":"/foo/1","value":"qux"}]')).toBe('{"foo":["bar","qux","baz"]}');
  });

  it('A.3 removes an object member', () => {
    expect(patch('{"baz":"qux","foo":"bar"}', '[{"op":"remove","path":"/baz"}]')).toBe('{"foo":"bar"}');
  });

  it('A.4 removes an array element', () => {
    expect(patch('{"foo":["bar","qux","baz"]}', '[{"op":"remove","path":"/foo/1"}]')).toBe('{"foo":["bar","baz"]}');
  });

  it('A.5 replaces a value, keeping the member in place', () => {
    expect(patch('{"baz":"qux","foo":"bar"}', '[{"op":"replace","path":"/baz","value":"boo"}]')).toBe('{"baz":"boo","foo":"bar"}');
  });

  it('A.6 moves a value', () => {
    expect(
      patch(
        '{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}',
        '[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]',
      ),
    ).toBe('{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}');
  });

  it('A.7 moves an array element', () => {
    expect(patch('{"foo":["all","grass","cows","eat"]}', '[{"op":"move","from":"/foo/1","path":"/foo/3"}]')).toBe(
      '{"foo":["all","cows","eat","grass"]}',
    );
  });

  it('A.8 passes successful tests', () => {
    const doc = '{"baz":"qux","foo":["a",2,"c"]}';
    expect(patch(doc, '[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]')).toBe(doc);
  });

  it('A.9 fails a test whose value differs', () => {
    expect(patchFails('{"baz":"qux"}', '[{"op":"test","path":"/baz","value":"bar"}]')).toBe(
      'operation 0 (test /baz): value differs',
    );
  });

  it('A.10 adds a nested member object', () => {
    expect(patch('{"foo":"bar"}', '[{"op":"add","path":"/child","value":{"grandchild":{}}}]')).toBe(
      '{"foo":"bar","child":{"grandchild":{}}}',
    );
  });

  it('A.11 ignores unrecognized members of an operation', () => {
    expect(patch('{"foo":"bar"}', '[{"op":"add","path":"/baz","value":"qux","xyz":123}]')).toBe('{"foo":"bar","baz":"qux"}');
  });

  it('A.12 refuses to add to a nonexistent target', () => {
    expect(patchFails('{"foo":"bar"}', '[{"op":"add","path":"/baz/bat","value":"qux"}]')).toBe(
      'operation 0 (add /baz/bat): /baz does not exist',
    );
  });

  it('A.13 refuses an operation with duplicate members (at parse time)', () => {
    expectStrataError(() => parse('[{"op":"add","path":"/baz","value":"qux","op":"remove"}]'), 'INVALID_JSON');
  });

  it('A.14 unescapes ~01 to ~1, not to /', () => {
    const doc = '{"/":9,"~1":10}';
    expect(patch(doc, '[{"op":"test","path":"/~01","value":10}]')).toBe(doc);
  });

  it('A.15 tells a string from a number', () => {
    patchFails('{"/":9,"~1":10}', '[{"op":"test","path":"/~01","value":"10"}]');
  });

  it('A.16 appends an array value with -', () => {
    expect(patch('{"foo":["bar"]}', '[{"op":"add","path":"/foo/-","value":["abc","def"]}]')).toBe(
      '{"foo":["bar",["abc","def"]]}',
    );
  });
});

describe('JSON Patch: semantics beyond the examples', () => {
  it('replaces an existing member in place on add', () => {
    expect(patch('{"a":1,"b":2}', '[{"op":"add","path":"/a","value":3}]')).toBe('{"a":3,"b":2}');
  });

  it('adds at the end index and replaces the whole document with an empty path', () => {
    expect(patch('{"a":[1]}', '[{"op":"add","path":"/a/1","value":2}]')).toBe('{"a":[1,2]}');
    expect(patch('{"a":1}', '[{"op":"add","path":"","value":{"b":2}}]')).toBe('{"b":2}');
    expect(patch('{"a":1}', '[{"op":"replace","path":"","value":[]}]')).toBe('[]');
  });

  it('keeps number text and integer-like member order through every operation', () => {
    const doc = '{"10":1.0,"2":12345678901234567890,"a":{"x":-0}}';
    expect(
      patch(doc, '[{"op":"copy","from":"/2","path":"/c"},{"op":"move","from":"/a/x","path":"/1"},{"op":"test","path":"/10","value":1}]'),
    ).toBe('{"10":1.0,"2":12345678901234567890,"a":{},"c":12345678901234567890,"1":-0}');
  });

  it('tests numbers by value and objects regardless of member order', () => {
    patch('{"a":1.0,"b":{"x":1,"y":[2]}}', '[{"op":"test","path":"/a","value":10e-1},{"op":"test","path":"/b","value":{"y":[2.0],"x":1}}]');
  });

  it('copies deeply, so later changes to the copy leave the source alone', () => {
    expect(patch('{"a":{"x":[1]}}', '[{"op":"copy","from":"/a","path":"/b"},{"op":"add","path":"/b/x/-","value":2}]')).toBe(
      '{"a":{"x":[1]},"b":{"x":[1,2]}}',
    );
    expect(
      patch('{"a":{"x":[1]}}', '[{"op":"add","path":"/n","value":{}},{"op":"copy","from":"/n","path":"/m"},{"op":"add","path":"/m/k","value":1}]'),
    ).toBe('{"a":{"x":[1]},"n":{},"m":{"k":1}}');
  });

  it('moves a value onto itself as a no-op and refuses moves into its own members', () => {
    expect(patch('{"a":{"b":1}}', '[{"op":"move","from":"/a","path":"/a"}]')).toBe('{"a":{"b":1}}');
    expect(patchFails('{"a":{"b":1}}', '[{"op":"move","from":"/a","path":"/a/b/c"}]')).toBe(
      'operation 0 (move /a to /a/b/c): cannot move a value into one of its own members',
    );
  });

  it('applies all or nothing, naming the failed operation', () => {
    const doc = parse('{"a":1}');
    const message = expectStrataError(
      () => applyJsonPatch(doc, parse('[{"op":"add","path":"/b","value":2},{"op":"remove","path":"/a"},{"op":"test","path":"/b","value":3}]')),
      'PATCH_FAILED',
    );
    expect(message).toBe('operation 2 (test /b): value differs');
    expect(serializeJson(doc)).toBe('{"a":1}');
  });

  const failures: [string, string, string][] = [
    ['{"a":1}', '[{"op":"remove","path":"/b"}]', 'operation 0 (remove /b): /b does not exist'],
    ['{"a":1}', '[{"op":"replace","path":"/b","value":1}]', 'operation 0 (replace /b): /b does not exist'],
    ['{"a":1}', '[{"op":"test","path":"/b","value":1}]', 'operation 0 (test /b): /b does not exist'],
    ['{"a":1}', '[{"op":"move","from":"/b","path":"/c"}]', 'operation 0 (move /b to /c): /b does not exist'],
    ['{"a":1}', '[{"op":"copy","from":"/b","path":"/c"}]', 'operation 0 (copy /b to /c): /b does not exist'],
    ['{"a":[1]}', '[{"op":"add","path":"/a/2","value":1}]', 'array index 2 is out of bounds (the array has 1 elements)'],
    ['{"a":[1]}', '[{"op":"remove","path":"/a/1"}]', 'array index 1 is out of bounds'],
    ['{"a":[1]}', '[{"op":"replace","path":"/a/-","value":0}]', "'-' (past the last element) can only be the target of add"],
    ['{"a":[1]}', '[{"op":"add","path":"/a/01","value":0}]', "'01' is not an array index"],
    ['{"a":[1]}', '[{"op":"add","path":"/a/x","value":0}]', "'x' is not an array index"],
    ['{"a":[1]}', '[{"op":"add","path":"/a/-1","value":0}]', "'-1' is not an array index"],
    ['{"a":1}', '[{"op":"add","path":"/a/b","value":0}]', 'operation 0 (add /a/b): /a is not an object or array'],
    ['{"a":1}', '[{"op":"remove","path":""}]', 'cannot remove the whole document'],
    ['{}', '{"op":"add"}', 'a JSON Patch must be an array of operations'],
    ['{}', '[1]', 'operation 0: is not an object'],
    ['{}', '[{"path":"/a"}]', 'operation 0: "op" must be one of'],
    ['{}', '[{"op":"delete","path":"/a"}]', 'operation 0: "op" must be one of'],
    ['{}', '[{"op":"add","value":1}]', 'operation 0: "path" must be a JSON Pointer string'],
    ['{}', '[{"op":"add","path":"a","value":1}]', "must be empty or start with '/'"],
    ['{}', '[{"op":"add","path":"/a~2","value":1}]', "'~' not followed by 0 or 1"],
    ['{}', '[{"op":"add","path":"/a"}]', 'operation 0: add needs a "value"'],
    ['{}', '[{"op":"test","path":"/a"}]', 'operation 0: test needs a "value"'],
    ['{}', '[{"op":"move","path":"/a"}]', 'operation 0: "from" must be a JSON Pointer string'],
    ['{}', '[{"op":"copy","path":"/a","from":5}]', 'operation 0: "from" must be a JSON Pointer string'],
  ];
  for (const [doc, ops, expected] of failures) {
    it(`fails ${ops} on ${doc} with PATCH_FAILED`, () => {
      expect(patchFails(doc, ops)).toContain(expected);
    });
  }

  it('accepts a null value and refuses more than patchOpsMax operations', () => {
    expect(patch('{}', '[{"op":"add","path":"/a","value":null}]')).toBe('{"a":null}');
    const ops = parse(`[${Array.from({ length: 4 }, () => '{"op":"test","path":"","value":{}}').join(',')}]`);
    expect(expectStrataError(() => applyJsonPatch(parse('{}'), ops, 3), 'PATCH_FAILED')).toContain('at most 3');
  });

  it('never mutates the document or the patch', () => {
    const doc = parse('{"a":{"b":[1,{"c":2}]},"d":[3]}');
    const ops = parse(
      '[{"op":"add","path":"/a/b/1/e","value":{"f":[]}},{"op":"add","path":"/a/b/1/e/f/-","value":1},{"op":"remove","path":"/d/0"},{"op":"move","from":"/a/b","path":"/x"},{"op":"copy","from":"/x","path":"/y"},{"op":"add","path":"/y/0","value":0}]',
    );
    const docBefore = serializeJson(doc);
    const opsBefore = serializeJson(ops);
    const out = applyJsonPatch(doc, ops);
    expect(serializeJson(out)).toBe('{"a":{},"d":[],"x":[1,{"c":2,"e":{"f":[1]}}],"y":[0,1,{"c":2,"e":{"f":[1]}}]}');
    expect(serializeJson(doc)).toBe(docBefore);
    expect(serializeJson(ops)).toBe(opsBefore);
  });

  it('handles thousands of operations on one array without copying it each time', () => {
    const ops: string[] = [];
    for (let i = 0; i < 10_000; i++) ops.push(`{"op":"add","path":"/list/-","value":${i}}`);
    const patch = parse(`[${ops.join(',')}]`);
    // Counted rather than timed (a busy machine makes any time bound flaky): copies of an array that already holds
    // many elements. Copying the list on each operation would make about 9,000 of them.
    const slice = Array.prototype.slice;
    let bigCopies = 0;
    const spy = vi.spyOn(Array.prototype, 'slice').mockImplementation(function (this: unknown[], ...args: [number?, number?]) {
      if (this.length >= 1000) bigCopies++;
      return slice.apply(this, args);
    });
    let out: Map<string, JsonValue>;
    try {
      out = applyJsonPatch(parse('{"list":[]}'), patch) as Map<string, JsonValue>;
    } finally {
      spy.mockRestore();
    }
    expect((out.get('list') as JsonValue[]).length).toBe(10_000);
    expect(bigCopies).toBe(0);
  });
});

describe('patchTouchedPointers', () => {
  it('lists every path and from the operations read or write', () => {
    const ops = parse(
      '[{"op":"replace","path":"/like_count","value":1},{"op":"move","from":"/a/b","path":"/c"},{"op":"test","path":"","value":{}}]',
    );
    expect(patchTouchedPointers(ops)).toEqual([['like_count'], ['c'], ['a', 'b'], []]);
  });

  it('refuses malformed patches like applyJsonPatch', () => {
    expectStrataError(() => patchTouchedPointers(parse('[{"op":"nope","path":"/a"}]')), 'PATCH_FAILED');
  });
});

describe('JSON Patch results are documents', () => {
  it('keeps results equal under jsonEquals to a re-parse of their text', () => {
    const out = applyJsonPatch(parse('{"a":[1,2,3]}'), parse('[{"op":"move","from":"/a/0","path":"/a/-"}]'));
    expect(jsonEquals(out, parse(serializeJson(out)))).toBe(true);
    expect(serializeJson(out)).toBe('{"a":[2,3,1]}');
  });
});
