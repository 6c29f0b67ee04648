import pino from 'pino';

/** Structured JSON logs. Components take a Logger so tests can silence or capture them. */
export type Logger = pino.Logger;

export function createLogger(level: string, name = 'strata'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}

export const silentLogger: Logger = pino({ level: 'silent' });
