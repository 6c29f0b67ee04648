import { assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';
import { NODE_ID_PATTERN, NODE_REGISTRY_LIMITS, type NodeMembershipState, type NodeRegistration } from './metadata-store.js';

/**
 * What both MetadataStore implementations check and answer alike for the storage-node registry (the interface's
 * doc comments are the contract; README.md "Node registry" describes how each store keeps it).
 */

/** A registration comes from validated configuration, so a bad one is a programmer error. */
export function assertRegistration(node: NodeRegistration, ttlMs: number): void {
  assert(NODE_ID_PATTERN.test(node.id), 'node id matches NODE_ID_PATTERN');
  assert(
    node.address.length > 0 && Buffer.byteLength(node.address) <= NODE_REGISTRY_LIMITS.addressBytesMax,
    'node address is non-empty and at most NODE_REGISTRY_LIMITS.addressBytesMax bytes',
  );
  assert(node.zone === undefined || NODE_ID_PATTERN.test(node.zone), 'node zone matches NODE_ID_PATTERN');
  assert(Number.isSafeInteger(ttlMs) && ttlMs > 0, 'ttlMs is an integer > 0');
}

export function assertMembershipState(state: NodeMembershipState): void {
  assert(state === 'active' || state === 'draining', "state is 'active' or 'draining'");
}

/** Ids reach setNodeState and removeNode from operators (admin routes); one that cannot exist is simply unknown. */
export function isPossibleNodeId(id: string): boolean {
  return NODE_ID_PATTERN.test(id);
}

export function nodeNotFound(id: string): StrataError {
  return new StrataError('NODE_NOT_FOUND', `no storage node "${id}" is registered`, { node: id });
}

export function nodeNotDrained(id: string, state: NodeMembershipState): StrataError {
  return new StrataError(
    'NODE_NOT_DRAINED',
    `storage node "${id}" is ${state}; only a draining node can be removed (drain it first, then wait until the healer reports it empty)`,
    { node: id, state },
  );
}

export function tooManyNodes(count: number): StrataError {
  return new StrataError(
    'METADATA_UNAVAILABLE',
    `the node registry holds more than ${NODE_REGISTRY_LIMITS.nodesMax} nodes (${count}); remove drained nodes`,
  );
}

/** Node ids are ASCII (NODE_ID_PATTERN), so code-unit order is UTF-8 byte order. */
export function byNodeId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
