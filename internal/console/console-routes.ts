/**
 * The web console (GET / and /console/*): a small self-contained HTML, CSS and JavaScript app in ./assets,
 * served as files, with no build step and nothing fetched from elsewhere. It reads the public API only
 * (/cluster, /node_status, /list, /stat, /storage_usage, /healer, /request_stats, /watch); see ./README.md.
 *
 * The assets hold no data, so they are registered before access control and load without an API key; the API
 * calls the console makes carry the key the user types in.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Env, Hono } from 'hono';

/**
 * The console may load its own script and stylesheet and talk to its own origin, and nothing else: no inline
 * script or style, no frames, no forms posting elsewhere.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** Read once at start-up: a missing asset is a broken installation and fails the gateway's start, not a request. */
function loadAssets(): Map<string, { body: string; type: string }> {
  const out = new Map<string, { body: string; type: string }>();
  for (const [name, type] of Object.entries(ASSETS)) {
    out.set(name, { body: readFileSync(fileURLToPath(new URL(`./assets/${name}`, import.meta.url)), 'utf8'), type });
  }
  return out;
}

export function registerConsoleRoutes<E extends Env>(app: Hono<E>): void {
  const assets = loadAssets();
  const serve = (name: string) => () => {
    const asset = assets.get(name)!;
    return new Response(asset.body, {
      headers: {
        'Content-Type': asset.type,
        'Content-Security-Policy': CONSOLE_CSP,
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
        'Cache-Control': 'no-cache',
      },
    });
  };
  app.get('/', serve('index.html'));
  app.get('/console', (c) => c.redirect('/', 301));
  app.get('/console/', (c) => c.redirect('/', 301));
  for (const name of Object.keys(ASSETS)) app.get(`/console/${name}`, serve(name));
}
