/**
 * Strict RFC 8259 parser into the document model (value.ts), keeping member order and number text exactly.
 *
 * Why it is shaped this way:
 * - Iterative, with an explicit stack: a body of a million `[` must answer DOCUMENT_TOO_DEEP, not overflow
 *   the JS stack. The depth limit is checked on every open, so it stops at depthMax + 1.
 * - Strings are found with indexOf rather than char by char, and only unescaped when a backslash lies before
 *   the closing quote. The next quote, backslash and control character are cached positions that are only
 *   searched again once the parser has passed them, so an 8 MiB string costs a few memchr-speed scans and
 *   one slice, and no search is ever repeated over the same text (no quadratic case with many escapes).
 * - A leading byte order mark is ignored (RFC 8259 section 8.1 allows a parser to); byte offsets in messages
 *   still count it, so they point into the bytes the client sent. Offsets are 0-based.
 * - Buffers are validated as UTF-8 (isUtf8 is simdutf-fast) before decoding, because Buffer#toString would
 *   silently replace bad bytes with U+FFFD.
 */
import { isUtf8 } from 'node:buffer';
import { assert } from '../core/assert.js';
import { StrataError, type ErrorCode } from '../core/errors.js';
import { JsonNumber, NESTING_DEPTH_HARD_MAX, type JsonObject, type JsonValue } from './value.js';

export interface ParseOptions {
  /** Deepest nesting allowed, objects and arrays both counting: `{}` at the top is depth 1, a scalar 0. */
  depthMax: number;
  /** Most object members plus array elements allowed in the whole document. */
  membersMax: number;
  /** What the text is, for error messages ("body is not valid JSON: ..."). Default 'body'. */
  what?: string;
}

export function parseJson(input: Buffer | string, options: ParseOptions): JsonValue {
  assert(options.depthMax >= 0 && options.membersMax >= 0, 'parseJson: depthMax and membersMax >= 0');
  // The parser itself could go deeper, but the recursive tree walks (serialize, equals) stop at the hard max,
  // so a tree deeper than it is refused here, where the message can name the byte.
  const depthMax = Math.min(options.depthMax, NESTING_DEPTH_HARD_MAX);
  const what = options.what ?? 'body';
  const text = typeof input === 'string' ? input : decodeUtf8(input, what);
  return new Parser(text, depthMax, options.membersMax, what).parseDocument();
}

function decodeUtf8(buf: Buffer, what: string): string {
  if (isUtf8(buf)) return buf.toString('utf8');
  const at = firstInvalidUtf8(buf);
  throw new StrataError('INVALID_JSON', `${what} is not valid UTF-8: bad byte sequence at byte ${at}`, {
    offset: at,
  });
}

/** Offset of the first byte that starts an invalid UTF-8 sequence (only called once isUtf8 said no). */
export function firstInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  while (i < buf.length) {
    const b = buf[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0; // overlong
      if (b === 0xed) hi = 0x9f; // UTF-16 surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90; // overlong
      if (b === 0xf4) hi = 0x8f; // beyond U+10FFFF
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = buf[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i;
    }
    i += need + 1;
  }
  return buf.length;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const MINUS = 0x2d;
const DIGIT0 = 0x30;
const DIGIT9 = 0x39;

const CONTROL_RE = /[\x00-\x1f]/g;
const HEX4_RE = /^[0-9a-fA-F]{4}$/;
const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/** An object being filled: the member whose value is being parsed is `key`. */
class ObjectFrame {
  constructor(
    readonly map: JsonObject,
    public key: string,
  ) {}
}

class Parser {
  private pos = 0;
  private members = 0;
  // Next position (>= the last search start) of '"', '\' and a control character; text.length when none.
  private nextQuote = -1;
  private nextBackslash = -1;
  private nextControl = -1;

  constructor(
    private readonly text: string,
    private readonly depthMax: number,
    private readonly membersMax: number,
    private readonly what: string,
  ) {}

  parseDocument(): JsonValue {
    if (this.text.charCodeAt(0) === 0xfeff) this.pos = 1;
    const value = this.parseValue();
    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail(`unexpected ${this.describe(this.pos)} after the value`, this.pos);
    return value;
  }

  private parseValue(): JsonValue {
    const stack: (JsonValue[] | ObjectFrame)[] = [];
    for (;;) {
      // Read the start of a value; containers with content push a frame and go round for their first value.
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      let value: JsonValue;
      if (c === LBRACE || c === LBRACKET) {
        if (stack.length + 1 > this.depthMax) {
          const reason = `nests deeper than ${this.depthMax} levels`;
          this.failLimit('DOCUMENT_TOO_DEEP', reason, this.pos, ' (objects and arrays both count)');
        }
        this.pos++;
        this.skipWhitespace();
        const close = c === LBRACE ? RBRACE : RBRACKET;
        if (this.text.charCodeAt(this.pos) === close) {
          this.pos++;
          value = c === LBRACE ? new Map() : [];
        } else if (c === LBRACE) {
          const map: JsonObject = new Map();
          stack.push(new ObjectFrame(map, this.readMemberName(map)));
          continue;
        } else {
          this.countMember(this.pos);
          stack.push([]);
          continue;
        }
      } else {
        value = this.parseScalar(c);
      }
      // Hand the value to its container; close containers for as long as the next token closes one.
      for (;;) {
        const top = stack[stack.length - 1];
        if (top === undefined) return value;
        this.skipWhitespace();
        const d = this.text.charCodeAt(this.pos);
        if (Array.isArray(top)) {
          top.push(value);
          if (d === COMMA) {
            this.pos++;
            this.countMember(this.pos);
            break;
          }
          if (d !== RBRACKET) this.fail(`unexpected ${this.describe(this.pos)}`, this.pos, `expected ',' or ']'`);
          value = top;
        } else {
          top.map.set(top.key, value);
          if (d === COMMA) {
            this.pos++;
            this.skipWhitespace();
            top.key = this.readMemberName(top.map);
            break;
          }
          if (d !== RBRACE) this.fail(`unexpected ${this.describe(this.pos)}`, this.pos, `expected ',' or '}'`);
          value = top.map;
        }
        this.pos++;
        stack.pop();
      }
    }
  }

  /** At a member name (white space already skipped): reads `"name"` and the colon after it. */
  private readMemberName(map: JsonObject): string {
    const at = this.pos;
    if (this.text.charCodeAt(at) !== QUOTE) {
      this.fail(`unexpected ${this.describe(at)}`, at, `expected a member name in double quotes`);
    }
    this.countMember(at);
    const name = this.readString();
    if (map.has(name)) {
      const shown = JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}...` : name);
      throw new StrataError(
        'INVALID_JSON',
        `${this.what} has a duplicate member name ${shown} at byte ${this.byteOffset(at)}`,
        { offset: this.byteOffset(at) },
      );
    }
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) !== COLON) {
      this.fail(`unexpected ${this.describe(this.pos)}`, this.pos, `expected ':'`);
    }
    this.pos++;
    return name;
  }

  private countMember(at: number): void {
    if (++this.members > this.membersMax) {
      this.failLimit('TOO_MANY_FIELDS', `has more than ${this.membersMax} members and elements in total`, at);
    }
  }

  private parseScalar(c: number): JsonValue {
    if (c === QUOTE) return this.readString();
    if (c === MINUS || (c >= DIGIT0 && c <= DIGIT9)) return this.readNumber();
    for (const [word, value] of LITERALS) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail(`unexpected ${this.describe(this.pos)}`, this.pos);
  }

  private readNumber(): JsonNumber {
    const text = this.text;
    const start = this.pos;
    let p = start;
    if (text.charCodeAt(p) === MINUS) p++;
    if (text.charCodeAt(p) === DIGIT0) p++;
    else p = this.digits(p);
    if (text.charCodeAt(p) === 0x2e /* . */) p = this.digits(p + 1);
    const e = text.charCodeAt(p);
    if (e === 0x65 || e === 0x45 /* e E */) {
      p++;
      const sign = text.charCodeAt(p);
      if (sign === 0x2b || sign === MINUS) p++;
      p = this.digits(p);
    }
    this.pos = p;
    return new JsonNumber(text.slice(start, p));
  }

  /** One or more digits from p; returns the position after them. */
  private digits(p: number): number {
    const start = p;
    for (let c = this.text.charCodeAt(p); c >= DIGIT0 && c <= DIGIT9; c = this.text.charCodeAt(++p));
    if (p === start) this.fail(`unexpected ${this.describe(p)} in a number`, p, `expected a digit`);
    return p;
  }

  /** At an opening quote: returns the string's value and moves past the closing quote. */
  private readString(): string {
    const open = this.pos;
    const start = open + 1;
    const end = this.quoteFrom(start);
    if (end === this.text.length) this.fail('unterminated string starting', open);
    if (this.backslashFrom(start) > end) {
      const control = this.controlFrom(start);
      if (control < end) this.failControl(control);
      this.pos = end + 1;
      return this.text.slice(start, end);
    }
    return this.readEscapedString(open);
  }

  /**
   * A string with escapes. Its text is already a JSON string literal, so once the real closing quote is found
   * (the first quote preceded by an even run of backslashes) the engine's native JSON.parse unescapes it at
   * memcpy-like speed. JSON.parse is exactly as strict as RFC 8259 about strings; when it refuses, the
   * step-by-step scanner below finds the offending byte for the message.
   */
  private readEscapedString(open: number): string {
    const text = this.text;
    let from = open + 1;
    for (;;) {
      const quote = this.quoteFrom(from);
      if (quote === text.length) this.fail('unterminated string starting', open);
      let run = 0;
      while (text.charCodeAt(quote - 1 - run) === BACKSLASH) run++;
      if (run % 2 === 0) {
        let value: unknown;
        try {
          value = JSON.parse(text.slice(open, quote + 1));
        } catch {
          return this.scanEscapedString(open);
        }
        this.pos = quote + 1;
        return value as string;
      }
      from = quote + 1;
    }
  }

  /** Unescapes step by step; used only to name the first error that JSON.parse found. */
  private scanEscapedString(open: number): string {
    const text = this.text;
    let out = '';
    let p = open + 1;
    for (;;) {
      const quote = this.quoteFrom(p);
      const backslash = this.backslashFrom(p);
      const runEnd = Math.min(quote, backslash);
      if (runEnd === text.length) this.fail('unterminated string starting', open);
      const control = this.controlFrom(p);
      if (control < runEnd) this.failControl(control);
      out += text.slice(p, runEnd);
      if (runEnd === quote) {
        this.pos = quote + 1;
        return out;
      }
      const kind = text.charAt(backslash + 1);
      const simple = SIMPLE_ESCAPES[kind];
      if (simple !== undefined) {
        out += simple;
        p = backslash + 2;
      } else if (kind === 'u') {
        const hex = text.slice(backslash + 2, backslash + 6);
        if (!HEX4_RE.test(hex)) this.fail('invalid \\u escape', backslash, 'expected 4 hex digits');
        // Lone surrogates are kept: JS strings hold them and JSON.stringify writes them back as \uXXXX.
        out += String.fromCharCode(parseInt(hex, 16));
        p = backslash + 6;
      } else if (kind === '') {
        this.fail('unterminated string starting', open);
      } else {
        this.fail(`invalid escape '\\${kind}'`, backslash);
      }
    }
  }

  private quoteFrom(from: number): number {
    if (this.nextQuote < from) this.nextQuote = this.found(this.text.indexOf('"', from));
    return this.nextQuote;
  }

  private backslashFrom(from: number): number {
    if (this.nextBackslash < from) this.nextBackslash = this.found(this.text.indexOf('\\', from));
    return this.nextBackslash;
  }

  private controlFrom(from: number): number {
    if (this.nextControl < from) {
      CONTROL_RE.lastIndex = from;
      this.nextControl = this.found(CONTROL_RE.exec(this.text)?.index ?? -1);
    }
    return this.nextControl;
  }

  private found(index: number): number {
    return index < 0 ? this.text.length : index;
  }

  private skipWhitespace(): void {
    const text = this.text;
    let p = this.pos;
    for (let c = text.charCodeAt(p); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = text.charCodeAt(++p));
    this.pos = p;
  }

  private failControl(at: number): never {
    const code = this.text.charCodeAt(at).toString(16).toUpperCase().padStart(4, '0');
    return this.fail(`unescaped control character U+${code} in a string`, at, `escape it, e.g. as \\u${code}`);
  }

  /** `<what> is not valid JSON: <reason> at byte N (<hint>)`: the offset right after the reason, as api.md shows. */
  private fail(reason: string, at: number, hint?: string): never {
    const offset = this.byteOffset(at);
    const tail = hint === undefined ? '' : ` (${hint})`;
    throw new StrataError('INVALID_JSON', `${this.what} is not valid JSON: ${reason} at byte ${offset}${tail}`, {
      offset,
    });
  }

  private failLimit(code: ErrorCode, reason: string, at: number, trailer = ''): never {
    const offset = this.byteOffset(at);
    throw new StrataError(code, `${this.what} ${reason} at byte ${offset}${trailer}`, { offset });
  }

  /** UTF-8 byte offset of a UTF-16 index; only computed for error messages. */
  private byteOffset(at: number): number {
    return Buffer.byteLength(this.text.slice(0, at), 'utf8');
  }

  private describe(at: number): string {
    if (at >= this.text.length) return 'end of input';
    const cp = this.text.codePointAt(at)!;
    if (cp > 0x20 && cp < 0x7f) return `'${String.fromCharCode(cp)}'`;
    return `character U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  }
}

const LITERALS: readonly [string, JsonValue][] = [
  ['true', true],
  ['false', false],
  ['null', null],
];
