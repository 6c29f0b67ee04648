/**
 * etcd for people: the same install and start the tests use (scripts/infra/etcd.ts).
 *
 *   npx tsx scripts/infra/etcd-cli.ts ensure                 # install Debian's etcd-server if missing; print its path
 *   npx tsx scripts/infra/etcd-cli.ts start                  # temp data dir, free ports; Ctrl-C stops and cleans up
 *   npx tsx scripts/infra/etcd-cli.ts start --port 2379 --peer-port 2380 --data-dir ./data/etcd
 *
 * `start` prints the endpoint to put in STRATA_ETCD_ENDPOINTS.
 */
import { ensureEtcd, startEtcd, type StartEtcdOptions } from './etcd.js';

const USAGE = 'usage: etcd-cli.ts ensure | start [--port N] [--peer-port N] [--data-dir DIR]';

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function parsePort(flag: string, value: string | undefined): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) fail(`${flag} needs a port number (1..65535), got ${value}`);
  return port;
}

function parseStartOptions(argv: string[]): StartEtcdOptions {
  const options: StartEtcdOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    i++;
    if (flag === '--port') options.clientPort = parsePort(flag, value);
    else if (flag === '--peer-port') options.peerPort = parsePort(flag, value);
    else if (flag === '--data-dir') options.dataDir = value ?? fail('--data-dir needs a directory');
    else fail(`unknown option ${flag}\n${USAGE}`);
  }
  return options;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'ensure') {
    const started = Date.now();
    const binary = await ensureEtcd();
    process.stdout.write(`etcd: ${binary} (${Date.now() - started} ms)\n`);
    return;
  }
  if (command === 'start') {
    const etcd = await startEtcd(parseStartOptions(rest));
    process.stdout.write(`etcd ready\n  endpoints: ${etcd.endpoints}\n  data dir:  ${etcd.dataDir}\nCtrl-C stops it.\n`);
    const shutdown = () => {
      void etcd.stop().then(() => process.exit(0));
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
    return;
  }
  fail(USAGE);
}

main(process.argv.slice(2)).catch((err: unknown) => fail((err as Error).message));
