/**
 * Helpers for openapi.test.ts: the parts of an OpenAPI 3.1 document the tests read, a structural check of the
 * document, and a small JSON Schema validator (the keywords the gateway's document uses; an unknown keyword is an
 * error, so that a schema this validator cannot judge never passes silently).
 */

export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  servers?: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, JsonSchema> };
}

export interface Operation {
  summary?: string;
  parameters?: { name: string; in: string; required?: boolean; schema?: JsonSchema }[];
  requestBody?: { content: Record<string, { schema?: JsonSchema }> };
  responses: Record<string, { description: string; content?: Record<string, { schema?: JsonSchema }>; headers?: Record<string, unknown> }>;
}

export type JsonSchema = Record<string, unknown>;

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** Every operation of the document as `METHOD /path`. */
export function operationsOf(doc: OpenApiDocument): { id: string; method: string; path: string; operation: Operation }[] {
  const out = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if ((HTTP_METHODS as readonly string[]).includes(method)) out.push({ id: `${method.toUpperCase()} ${path}`, method, path, operation });
    }
  }
  return out;
}

/** Follows `$ref: '#/...'` pointers; throws on one that does not resolve. */
export function resolveRef(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are expected; got ${ref}`);
  let node: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(segment in node)) throw new Error(`$ref ${ref} does not resolve`);
    node = (node as Record<string, unknown>)[segment];
  }
  return node;
}

/** Structural problems of the document (empty when it is well formed). */
export function structuralProblems(doc: OpenApiDocument): string[] {
  const problems: string[] = [];
  if (!/^3\.\d+\.\d+$/.test(doc.openapi)) problems.push(`openapi is "${doc.openapi}", not 3.x.y`);
  if (typeof doc.info?.title !== 'string' || typeof doc.info?.version !== 'string') problems.push('info needs title and version');
  if (doc.paths === null || typeof doc.paths !== 'object') return [...problems, 'paths is missing'];
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!path.startsWith('/')) problems.push(`path ${path} does not start with /`);
    const operations = Object.keys(item).filter((k) => (HTTP_METHODS as readonly string[]).includes(k));
    if (operations.length === 0) problems.push(`${path} has no operations`);
    for (const method of operations) {
      const op = item[method]!;
      const where = `${method.toUpperCase()} ${path}`;
      const responses = Object.keys(op.responses ?? {});
      if (responses.length === 0) problems.push(`${where} has no responses`);
      for (const status of responses) {
        if (!/^[1-5]\d\d$/.test(status) && status !== 'default') problems.push(`${where}: response key ${status} is not a status`);
        if (typeof op.responses[status]!.description !== 'string') problems.push(`${where} ${status} has no description`);
      }
      const declared = new Set((op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name));
      const templated = new Set([...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!));
      for (const name of templated) if (!declared.has(name)) problems.push(`${where}: path parameter {${name}} is not declared`);
      for (const name of declared) if (!templated.has(name)) problems.push(`${where}: parameter ${name} is not in the path`);
      for (const p of op.parameters ?? []) {
        if (!['path', 'query', 'header', 'cookie'].includes(p.in)) problems.push(`${where}: parameter ${p.name} is in "${p.in}"`);
        if (p.in === 'path' && p.required !== true) problems.push(`${where}: path parameter ${p.name} must be required`);
      }
    }
  }
  walk(doc, (node, at) => {
    if (typeof node.$ref === 'string') {
      try {
        resolveRef(doc, node.$ref);
      } catch (error) {
        problems.push(`${at}: ${(error as Error).message}`);
      }
    }
  });
  return problems;
}

function walk(node: unknown, visit: (node: Record<string, unknown>, at: string) => void, at = '#'): void {
  if (Array.isArray(node)) node.forEach((child, i) => walk(child, visit, `${at}/${i}`));
  else if (node !== null && typeof node === 'object') {
    visit(node as Record<string, unknown>, at);
    for (const [k, child] of Object.entries(node)) walk(child, visit, `${at}/${k}`);
  }
}

/** Keywords that only describe (no constraint on the value). */
const ANNOTATIONS = new Set(['description', 'example', 'examples', 'title', 'default', 'deprecated', 'readOnly', 'writeOnly', 'contentEncoding', 'contentMediaType', 'format']);

/** Errors of `value` against `schema` (empty when it validates). */
export function validateSchema(doc: unknown, schema: JsonSchema, value: unknown, at = '$'): string[] {
  if (typeof schema.$ref === 'string') return validateSchema(doc, resolveRef(doc, schema.$ref) as JsonSchema, value, at);
  const errors: string[] = [];
  for (const [keyword, arg] of Object.entries(schema)) {
    if (ANNOTATIONS.has(keyword)) continue;
    switch (keyword) {
      case 'type': {
        const types = Array.isArray(arg) ? (arg as string[]) : [arg as string];
        if (!types.some((t) => hasType(value, t))) errors.push(`${at}: ${JSON.stringify(value)?.slice(0, 80)} is not ${types.join(' or ')}`);
        break;
      }
      case 'nullable':
        break; // 3.0 only; handled with `type`
      case 'enum':
        if (!(arg as unknown[]).some((v) => JSON.stringify(v) === JSON.stringify(value))) errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(arg)}`);
        break;
      case 'const':
        if (JSON.stringify(arg) !== JSON.stringify(value)) errors.push(`${at}: ${JSON.stringify(value)} is not ${JSON.stringify(arg)}`);
        break;
      case 'pattern':
        if (typeof value === 'string' && !new RegExp(arg as string, 'u').test(value)) errors.push(`${at}: "${value}" does not match ${arg}`);
        break;
      case 'minimum':
        if (typeof value === 'number' && value < (arg as number)) errors.push(`${at}: ${value} < ${arg}`);
        break;
      case 'maximum':
        if (typeof value === 'number' && value > (arg as number)) errors.push(`${at}: ${value} > ${arg}`);
        break;
      case 'minLength':
        if (typeof value === 'string' && value.length < (arg as number)) errors.push(`${at}: shorter than ${arg}`);
        break;
      case 'maxLength':
        if (typeof value === 'string' && value.length > (arg as number)) errors.push(`${at}: longer than ${arg}`);
        break;
      case 'required':
        if (isObject(value)) for (const name of arg as string[]) if (!(name in value)) errors.push(`${at}: member "${name}" is missing`);
        break;
      case 'properties':
        if (isObject(value)) {
          for (const [name, sub] of Object.entries(arg as Record<string, JsonSchema>)) {
            if (name in value) errors.push(...validateSchema(doc, sub, value[name], `${at}.${name}`));
          }
        }
        break;
      case 'additionalProperties':
        if (isObject(value)) {
          const known = new Set(Object.keys((schema.properties as object | undefined) ?? {}));
          for (const [name, member] of Object.entries(value)) {
            if (known.has(name)) continue;
            if (arg === false) errors.push(`${at}: member "${name}" is not documented`);
            else if (isObject(arg)) errors.push(...validateSchema(doc, arg, member, `${at}.${name}`));
          }
        }
        break;
      case 'propertyNames':
        if (isObject(value)) for (const name of Object.keys(value)) errors.push(...validateSchema(doc, arg as JsonSchema, name, `${at}[key ${name}]`));
        break;
      case 'items':
        if (Array.isArray(value)) value.forEach((item, i) => errors.push(...validateSchema(doc, arg as JsonSchema, item, `${at}[${i}]`)));
        break;
      case 'anyOf':
      case 'oneOf': {
        const matches = (arg as JsonSchema[]).filter((sub) => validateSchema(doc, sub, value, at).length === 0).length;
        if (keyword === 'anyOf' ? matches === 0 : matches !== 1) errors.push(`${at}: ${matches} of the ${keyword} alternatives match`);
        break;
      }
      case 'allOf':
        for (const sub of arg as JsonSchema[]) errors.push(...validateSchema(doc, sub, value, at));
        break;
      default:
        errors.push(`${at}: the test's validator does not know the keyword "${keyword}"`);
    }
  }
  return errors;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'null':
      return value === null;
    case 'boolean':
      return typeof value === 'boolean';
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'integer':
      return Number.isInteger(value);
    case 'array':
      return Array.isArray(value);
    case 'object':
      return isObject(value);
    default:
      return false;
  }
}
