/**
 * The shape shared by every entry point: load config, start, print where it listens, stop cleanly on
 * SIGINT/SIGTERM within a bound, and turn configuration errors into one clear line.
 */
import { ConfigError, loadConfig, type StrataConfig } from '../config/config.js';
import { createLogger, type Logger } from '../log/logger.js';

/** Shutdown gives in-flight work this long before the process exits anyway. */
const SHUTDOWN_MS_MAX = 15_000;

export async function runProcess(
  name: string,
  start: (config: Readonly<StrataConfig>, log: Logger) => Promise<{ describe: string; stop(): Promise<void> }>,
): Promise<void> {
  let config: Readonly<StrataConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`strata ${name}: configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.logLevel, `strata-${name}`);
  let running: { describe: string; stop(): Promise<void> };
  try {
    running = await start(config, log);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`strata ${name}: could not start: ${message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${running.describe}\n`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`strata ${name}: second ${signal}, exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    process.stdout.write(`strata ${name}: ${signal} received, shutting down...\n`);
    const timer = setTimeout(() => {
      process.stderr.write(`strata ${name}: shutdown took longer than ${SHUTDOWN_MS_MAX} ms, exiting\n`);
      process.exit(1);
    }, SHUTDOWN_MS_MAX);
    timer.unref();
    running.stop().then(
      () => process.exit(0),
      (error) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
