/**
 * Command line for the test Kafka (./kafka.ts):
 *   tsx scripts/infra/kafka-cli.ts ensure                  fetch the jars if missing; print the classpath
 *   tsx scripts/infra/kafka-cli.ts start [--data-dir DIR]  start a single KRaft node; stop it on Ctrl-C
 */
import { ensureKafka, KAFKA_VERSION, startKafka } from './kafka.js';

const USAGE = 'usage: kafka-cli.ts ensure | start [--data-dir DIR]';

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'ensure') {
    const started = Date.now();
    const { classpath } = await ensureKafka();
    console.log(`Kafka ${KAFKA_VERSION} ready in ${Date.now() - started} ms; classpath: ${classpath}`);
    return;
  }
  if (command === 'start') {
    let dataDir: string | undefined;
    if (rest[0] === '--data-dir' && rest[1] !== undefined && rest.length === 2) dataDir = rest[1];
    else if (rest.length > 0) throw new Error(USAGE);
    const started = Date.now();
    const kafka = await startKafka(dataDir === undefined ? {} : { dataDir });
    console.log(`Kafka ${KAFKA_VERSION} started in ${Date.now() - started} ms`);
    console.log(`brokers: ${kafka.brokers}`);
    console.log(`data:    ${kafka.dataDir}${dataDir === undefined ? ' (removed on stop)' : ''}`);
    console.log(`log:     ${kafka.logFile}`);
    console.log('Ctrl-C stops it.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await kafka.stop();
    console.log('stopped');
    return;
  }
  throw new Error(USAGE);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error((err as Error).message);
  process.exitCode = 1;
});
