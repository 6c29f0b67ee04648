/** The document model of the store: parse, serialize, field paths, split/merge, projection and patches. */
export {
  JsonNumber,
  NESTING_DEPTH_HARD_MAX,
  checkNestingDepth,
  cloneJson,
  fromPlain,
  isJsonObject,
  jsonEquals,
  numbersEqual,
  toPlain,
  type JsonObject,
  type JsonValue,
} from './value.js';
export { parseJson, type ParseOptions } from './parse.js';
export { serializeJson } from './serialize.js';
export {
  HOT_FIELD_LIST,
  PROJECTION_FIELD_LIST,
  formatFieldPath,
  formatPointer,
  isPrefix,
  parseFieldList,
  parseFieldPath,
  parseFieldPaths,
  parseJsonPointer,
  type FieldListOptions,
} from './pointer.js';
export {
  coldHash,
  coldHashMatches,
  sameColdHash,
  COLD_HASH_HEX_DIGITS,
  decodeHotBlob,
  encodeHotBlob,
  mergeDocument,
  splitDocument,
  type DecodedHot,
  type HotEntry,
  type HotSplice,
  type SplitResult,
} from './split.js';
export { projectDocument, projectHot } from './project.js';
export {
  applyJsonPatch,
  applyMergePatch,
  parsePatchOperations,
  patchTouchedPointers,
  type PatchOperation,
} from './patch.js';
