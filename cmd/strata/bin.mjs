#!/usr/bin/env node
// The `strata` bin: registers tsx's ESM loader (tsx/esm/api, Node >= 20.6) so the TypeScript sources run as they
// are, without a build step, then runs the CLI.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
