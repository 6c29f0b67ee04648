/**
 * Field paths, as api.md defines them for `hot_fields` and `fields`: a plain name (`like_count`) is a top-level
 * member, taken verbatim; a string starting with '/' is an RFC 6901 JSON Pointer (`/stats/views`). A path is
 * held as its list of segments (member names), which is what every other module works with.
 */
import { StrataError, type ErrorCode } from '../core/errors.js';
import { LIMITS } from '../core/limits.js';

/**
 * RFC 6901 JSON Pointer to segments: '' is the whole document ([]), otherwise '/'-separated segments in which
 * `~1` means '/' and `~0` means '~'; any other '~' is an error. Empty segments are member names "".
 */
export function parseJsonPointer(pointer: string, code: ErrorCode, what = 'JSON Pointer'): string[] {
  if (pointer === '') return [];
  if (pointer[0] !== '/') {
    throw new StrataError(code, `${what} ${quote(pointer)} must be empty or start with '/'`);
  }
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => {
      if (!segment.includes('~')) return segment;
      if (/~(?![01])/.test(segment)) {
        const reason = `has a '~' not followed by 0 or 1 (write ~0 for '~', ~1 for '/')`;
        throw new StrataError(code, `${what} ${quote(pointer)} ${reason}`);
      }
      // One pass, so "~01" becomes "~1" and not "/" (RFC 6901 section 4).
      return segment.replace(/~[01]/g, (m) => (m === '~1' ? '/' : '~'));
    });
}

/** Segments to the canonical pointer text: '/a/b', with '~' and '/' in names escaped; [] is ''. */
export function formatPointer(segments: readonly string[]): string {
  let out = '';
  for (const s of segments) out += '/' + s.replace(/~/g, '~0').replace(/\//g, '~1');
  return out;
}

/**
 * One field path. The empty string and '/' alone are refused: neither names a member a client would mean (a
 * top-level member named "" cannot be a field). Errors carry the caller's code (INVALID_HOT_FIELDS,
 * INVALID_FIELDS, ...).
 */
export function parseFieldPath(path: string, code: ErrorCode): string[] {
  if (path === '') throw new StrataError(code, 'a field path is empty');
  if (path === '/') throw new StrataError(code, `field path "/" names no member; write a name or a pointer like /a/b`);
  if (path[0] !== '/') return [path];
  return parseJsonPointer(path, code, 'field path');
}

/**
 * How a path is shown back to a client (`hot_fields` in responses): the plain name for a top-level member
 * whose name could not be mistaken for a pointer, the pointer otherwise.
 */
export function formatFieldPath(segments: readonly string[]): string {
  const only = segments[0];
  if (segments.length === 1 && only !== undefined && only !== '' && only[0] !== '/') return only;
  return formatPointer(segments);
}

export interface FieldListOptions {
  /** Most paths allowed in the list (counted before duplicates are removed, so the work stays bounded). */
  countMax: number;
  /** Longest path allowed, in UTF-8 bytes of its decoded text. */
  pathBytesMax?: number;
  /** Drop paths that lie below another listed path (for hot fields, the ancestor carries the descendant). */
  dropDescendants?: boolean;
}

/** `hot_fields`: the ancestor carries its descendants, so they are dropped. */
export const HOT_FIELD_LIST: Readonly<FieldListOptions> = Object.freeze({
  countMax: LIMITS.hotFieldsMax,
  pathBytesMax: LIMITS.hotFieldBytesMax,
  dropDescendants: true,
});

/** `fields` (projections): overlapping paths are harmless there; the URL's own limit bounds a path's length. */
export const PROJECTION_FIELD_LIST: Readonly<FieldListOptions> = Object.freeze({
  countMax: LIMITS.projectionFieldsMax,
});

/**
 * Parses a list of field paths given as separate strings (a policy's JSON array, an already-split list): checks
 * the limits, removes duplicates (a plain name and its pointer are the same path) keeping the first, and
 * optionally drops descendants of listed paths. Order of first appearance is kept.
 */
export function parseFieldPaths(paths: readonly string[], code: ErrorCode, options: FieldListOptions): string[][] {
  if (paths.length > options.countMax) {
    throw new StrataError(code, `${paths.length} field paths given; at most ${options.countMax} are allowed`);
  }
  const out: string[][] = [];
  const seen = new Set<string>();
  for (const path of paths) {
    if (options.pathBytesMax !== undefined && Buffer.byteLength(path, 'utf8') > options.pathBytesMax) {
      throw new StrataError(code, `field path ${quote(path)} is longer than ${options.pathBytesMax} bytes`);
    }
    const segments = parseFieldPath(path, code);
    const key = formatPointer(segments);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(segments);
  }
  return options.dropDescendants ? out.filter((p) => !out.some((q) => q !== p && isPrefix(q, p))) : out;
}

/**
 * Parses a comma-separated list as it arrives in a query string. The HTTP layer passes the raw value, still
 * percent-encoded, because a comma inside a name travels as %2C and must not split: we split on ',' first and
 * percent-decode each piece after. '+' decodes to a space, as in every form-encoded query (URLSearchParams
 * writes a space that way; a literal '+' travels as %2B). An empty value is an empty list; an empty piece
 * ("a,,b", a trailing comma) is an error.
 */
export function parseFieldList(raw: string, code: ErrorCode, options: FieldListOptions): string[][] {
  if (raw === '') return [];
  const pieces = raw.split(',');
  if (pieces.length > options.countMax) {
    throw new StrataError(code, `${pieces.length} field paths given; at most ${options.countMax} are allowed`);
  }
  const decoded = pieces.map((piece) => {
    let path: string;
    try {
      path = decodeURIComponent(piece.replace(/\+/g, ' '));
    } catch {
      throw new StrataError(code, `field path ${quote(piece)} is not valid percent-encoded UTF-8`);
    }
    if (path === '') throw new StrataError(code, `the field list ${quote(raw)} has an empty entry`);
    return path;
  });
  return parseFieldPaths(decoded, code, options);
}

/** True when `a` equals `b` or is an ancestor of it. */
export function isPrefix(a: readonly string[], b: readonly string[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);
}
