// Types of node-runtime.mjs (plain JavaScript: it runs before anything is compiled), for the tests that read it.
export interface NodeLine {
  major: number;
  version: string;
}
export declare const NODE_LINES: { oldest: NodeLine; newest: NodeLine };
