// `strata`, the command-line client: hands argv, the environment and the standard streams to internal/cli.
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { runCli } from '../../internal/cli/strata-cli.js';

// The reader went away (`strata ls | head`): end quietly, as a command in a pipeline should, rather than with an
// unhandled EPIPE and a stack trace. Any other output error is a real failure and stays loud.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
}

process.exitCode = await runCli(process.argv.slice(2), { STRATA_URL: process.env.STRATA_URL, STRATA_API_KEY: process.env.STRATA_API_KEY }, {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  readStdin: () => text(process.stdin),
  readFile: (path) => readFile(path, 'utf8'),
  // Progress is drawn in place on a terminal only; a pipe or a log file gets the final report alone.
  ...(process.stderr.isTTY ? { progress: (line: string) => void process.stderr.write(`\r\x1b[2K${line}`) } : {}),
  // A question needs a person at a terminal; without one, commands that would ask require --yes instead.
  ...(process.stdin.isTTY && process.stderr.isTTY ? { confirm } : {}),
});

async function confirm(question: string): Promise<boolean> {
  // Loaded when a question is asked: every other command would pay for it at start.
  const { createInterface } = await import('node:readline/promises');
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}
