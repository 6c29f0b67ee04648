/**
 * The shape shared by every entry point: load config, start, print where it listens, stop cleanly on
 * SIGINT/SIGTERM within a bound, and turn configuration errors into one clear line.
 *
 * Shutdown: the first SIGTERM or SIGINT asks the process to stop (stop accepting, finish requests in flight, leave
 * the node registry, close volumes, the WAL and the metadata store). It exits 0 when that completes within
 * STRATA_SHUTDOWN_GRACE_MS with nothing cut, 1 when requests in flight had to be cut or the bound passed (with a
 * log line saying which), 130 on a second signal.
 */
import { ConfigError, loadConfig, type StrataConfig } from '../config/config.js';
import { createLogger, type Logger } from '../log/logger.js';

export interface StartedProcess {
  describe: string;
  /** Resolves `{ cut: true }` when requests in flight had to be cut to stop. */
  stop(): Promise<{ cut: boolean } | void>;
}

/** Exit statuses a supervisor can tell apart. */
export const EXIT_STATUS = {
  clean: 0,
  /** Did not start, or did not stop cleanly within the bound. */
  failed: 1,
  config: 2,
  /** A second signal during shutdown. */
  interrupted: 130,
} as const;

export async function runProcess(
  name: string,
  start: (config: Readonly<StrataConfig>, log: Logger) => Promise<StartedProcess>,
): Promise<void> {
  let config: Readonly<StrataConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`strata ${name}: configuration error: ${error.message}\n`);
      process.exit(EXIT_STATUS.config);
    }
    throw error;
  }
  const log = createLogger(config.logLevel, `strata-${name}`);
  let running: StartedProcess;
  try {
    running = await start(config, log);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`strata ${name}: could not start: ${message}\n`);
    process.exit(EXIT_STATUS.failed);
  }
  process.stdout.write(`${running.describe}\n`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`strata ${name}: second ${signal}, exiting now\n`);
      process.exit(EXIT_STATUS.interrupted);
    }
    stopping = true;
    const startedMs = Date.now();
    const boundMs = config.shutdownGraceMs;
    process.stdout.write(`strata ${name}: ${signal} received, shutting down (within ${boundMs} ms)...\n`);
    log.info({ signal, shutdownGraceMs: boundMs }, 'shutting down');
    const timer = setTimeout(() => {
      log.error({ shutdownGraceMs: boundMs }, `shutdown did not finish within STRATA_SHUTDOWN_GRACE_MS (${boundMs} ms); exiting with what is left cut`);
      process.stderr.write(`strata ${name}: shutdown took longer than ${boundMs} ms (STRATA_SHUTDOWN_GRACE_MS), exiting\n`);
      process.exit(EXIT_STATUS.failed);
    }, boundMs);
    timer.unref();
    running.stop().then(
      (outcome) => {
        const tookMs = Date.now() - startedMs;
        if (outcome?.cut === true) {
          log.error({ tookMs }, 'shutdown cut requests that were still in flight at the end of the drain period');
          process.exit(EXIT_STATUS.failed);
        }
        log.info({ tookMs }, 'stopped cleanly');
        process.exit(EXIT_STATUS.clean);
      },
      (error) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(EXIT_STATUS.failed);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
