/** The machine a run measured, for the JSON result and BENCHMARKS.md. */
import { readFile } from 'node:fs/promises';
import os from 'node:os';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  os: string;
  node: string;
  hostname: string;
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpus = os.cpus();
  let kernel = `${os.type()} ${os.release()}`;
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(await readFile('/etc/os-release', 'utf8'));
    if (pretty) kernel = `${pretty[1]}, ${kernel}`;
  } catch {
    // not Linux: the kernel line is enough
  }
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    os: kernel,
    node: process.version,
    hostname: os.hostname(),
  };
}
