/**
 * A 3-member etcd cluster on three namespace hosts (scripts/infra/etcd-members.ts) under a partition: the majority
 * keeps accepting writes, the member cut off from it refuses linearizable reads and writes (it cannot know it has
 * the latest value), and once healed it catches up. This is the ground Strata's metadata store stands on when a
 * user runs etcd as a real cluster: what etcd itself guarantees, checked on this machine's etcd.
 *
 * The client is etcdctl in the test process, on the control node, which reaches every member throughout.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { InfraError } from '../../scripts/infra/debian-package.js';
import { etcdctl } from '../../scripts/infra/etcd.js';
import { startEtcdMembers, type RunningEtcdMembers } from '../../scripts/infra/etcd-members.js';
import { startTopology, type Topology } from '../../scripts/infra/netns.js';
import { waitForValue, waitUntil } from '../helpers/wait.js';
import { PARTITION_TEST_TIMEOUT_MS, PARTITION_WAIT_MS, describePartitions } from './support.js';

const HOSTS = ['etcd1', 'etcd2', 'etcd3'] as const;
/**
 * etcdctl's own deadline per request. A request to a member that cannot reach a majority never completes, so this
 * is how long a refusal takes to show; it is above the members' election timeout (2 s) so that a request to a
 * healthy majority is not cut short by a busy machine.
 */
const REQUEST_TIMEOUT = '6s';

/** How etcd says it cannot serve a request without a majority (a refusal, not a dead member's "connection refused"). */
const REFUSED = /deadline exceeded|timed out|no leader|leader changed/i;

let net: Topology;
let etcd: RunningEtcdMembers;

const put = (member: string, key: string, value: string): Promise<string> =>
  etcdctl(etcd.member(member).clientUrl, [`--command-timeout=${REQUEST_TIMEOUT}`, 'put', key, value]);

/** A linearizable read (etcd's default): answered only with the cluster's latest value, so never by a cut-off member. */
async function getLinearizable(member: string, key: string): Promise<string | null> {
  return valueOf(await etcdctl(etcd.member(member).clientUrl, [`--command-timeout=${REQUEST_TIMEOUT}`, 'get', key, '--print-value-only']));
}

/** A serializable read: the member's own copy, whatever it is. Shows what a member holds without asking the others. */
async function getLocal(member: string, key: string): Promise<string | null> {
  return valueOf(await etcdctl(etcd.member(member).clientUrl, [`--command-timeout=${REQUEST_TIMEOUT}`, 'get', key, '--print-value-only', '--consistency=s']));
}

function valueOf(out: string): string | null {
  const value = out.trim();
  return value === '' ? null : value;
}

describePartitions('a 3-member etcd cluster under a partition', () => {
  beforeAll(async () => {
    net = await startTopology({ prefix: 'spetc', subnet: 72, hosts: HOSTS });
    etcd = await startEtcdMembers(net, HOSTS);
  }, PARTITION_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await etcd?.stop();
    await net?.teardown();
  }, PARTITION_TEST_TIMEOUT_MS);

  it('a write through one member is read through each of the others', async () => {
    await put('etcd1', 'greeting', 'hello');
    expect(await getLinearizable('etcd2', 'greeting')).toBe('hello');
    expect(await getLinearizable('etcd3', 'greeting')).toBe('hello');
  }, PARTITION_TEST_TIMEOUT_MS);

  it('with its leader isolated, the majority elects another and stays writable, the isolated member refuses linearizable reads and writes, and after healing it catches up', async () => {
    await put('etcd1', 'before', 'v1');
    const isolated = await waitForValue('the members agree on a leader', () => etcd.leader(), PARTITION_WAIT_MS);
    const majority = HOSTS.filter((h) => h !== isolated);
    // The isolated member holds the pre-partition value already (every member applied it before the cut).
    await waitUntil(`${isolated} holds the value written before the partition`, async () => (await getLocal(isolated, 'before')) === 'v1', PARTITION_WAIT_MS);

    await net.isolate(isolated);

    // The majority notices the silent leader after an election timeout and elects one of its own.
    await waitUntil(
      `a write through ${majority[0]} succeeds without ${isolated}`,
      () => put(majority[0]!, 'during', 'v2').then(() => true),
      PARTITION_WAIT_MS,
    );
    expect(await getLinearizable(majority[1]!, 'during')).toBe('v2');

    // The cut-off member cannot reach a majority: a write through it cannot commit, and a linearizable read cannot
    // confirm it has the latest value. Both fail rather than answer.
    await expect(put(isolated, 'through-isolated', 'lost')).rejects.toThrow(InfraError);
    await expect(put(isolated, 'through-isolated', 'lost')).rejects.toThrow(REFUSED);
    await expect(getLinearizable(isolated, 'before')).rejects.toThrow(REFUSED);
    // Yet it is alive and holds its old copy: what a serializable (stale-allowed) read gets, without the new write.
    expect(await getLocal(isolated, 'before')).toBe('v1');
    expect(await getLocal(isolated, 'during')).toBeNull();

    await net.heal();
    await waitUntil(`${isolated} has the write made while it was cut off`, async () => (await getLocal(isolated, 'during')) === 'v2', PARTITION_WAIT_MS);
    await waitUntil(`${isolated} serves linearizable reads and writes again`, async () => {
      await put(isolated, 'after', 'v3');
      return (await getLinearizable(isolated, 'during')) === 'v2';
    }, PARTITION_WAIT_MS);
    expect(await getLinearizable(majority[0]!, 'after')).toBe('v3');
  }, PARTITION_TEST_TIMEOUT_MS);
});
