/**
 * nginx for people: the same install, render and start the tests use (scripts/infra/nginx.ts).
 *
 *   npx tsx scripts/infra/nginx-cli.ts ensure                        # install Debian's nginx if missing; print its path
 *   npx tsx scripts/infra/nginx-cli.ts check                         # `nginx -t` on the rendered nginx.conf
 *   npx tsx scripts/infra/nginx-cli.ts start --upstream 127.0.0.1:8000 --upstream 127.0.0.1:8001 [--port 8080]
 *
 * `start` runs nginx with the project's nginx.conf in front of the given gateways until Ctrl-C.
 */
import { checkNginxConf, ensureNginx, NGINX_CONF_PATH, startNginx } from './nginx.js';

const USAGE = 'usage: nginx-cli.ts ensure | check [--upstream HOST:PORT ...] | start --upstream HOST:PORT [--upstream ...] [--port N]';

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function parseOptions(argv: string[]): { upstreams: string[]; port?: number } {
  const upstreams: string[] = [];
  let port: number | undefined;
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--upstream') upstreams.push(value ?? fail('--upstream needs HOST:PORT'));
    else if (flag === '--port') {
      port = Number(value);
      if (!Number.isInteger(port) || port < 1 || port > 65_535) fail(`--port needs a port number (1..65535), got ${value}`);
    } else fail(`unknown option ${flag}\n${USAGE}`);
  }
  return port === undefined ? { upstreams } : { upstreams, port };
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'ensure') {
    const started = Date.now();
    const binary = await ensureNginx();
    process.stdout.write(`nginx: ${binary} (${Date.now() - started} ms)\n`);
    return;
  }
  if (command === 'check') {
    const { upstreams } = parseOptions(rest);
    const output = await checkNginxConf(upstreams.length > 0 ? { upstreams } : {});
    process.stdout.write(`${NGINX_CONF_PATH}: rendered and accepted by nginx -t\n${output}\n`);
    return;
  }
  if (command === 'start') {
    const options = parseOptions(rest);
    if (options.upstreams.length === 0) fail(`start needs at least one --upstream\n${USAGE}`);
    const nginx = await startNginx(options);
    process.stdout.write(
      `nginx ready\n  url:       ${nginx.url}\n  upstreams: ${options.upstreams.join(', ')}\n  config:    ${nginx.configPath}\n` +
        `  logs:      ${nginx.errorLogPath}, ${nginx.accessLogPath}\nCtrl-C stops it.\n`,
    );
    const shutdown = (): void => {
      void nginx.stop().then(() => process.exit(0));
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
    return;
  }
  fail(USAGE);
}

main(process.argv.slice(2)).catch((err: unknown) => fail((err as Error).message));
