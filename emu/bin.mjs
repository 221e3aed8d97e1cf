#!/usr/bin/env node
// bootgate's executable. Start-up matters to a CI gate, so it runs one ESM bundle of the
// TypeScript sources, rebuilt with esbuild (a dependency of tsx) whenever a source is newer;
// where the bundle cannot be written it runs the sources through tsx instead.
import * as fs from "node:fs";
import * as path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const ROOT = path.resolve(import.meta.dirname, "..");
const BUNDLE = path.join(ROOT, ".cache", "bundle", "bootgate.mjs");
// The batch worker thread's entry (emu/batch.ts loads it from beside the main bundle).
const WORKER_BUNDLE = path.join(ROOT, ".cache", "bundle", "batch-worker.mjs");
const SOURCES = ["emu", "images", "firmware-stubs"];
process.env.BOOTGATE_ROOT = ROOT;

function newestSource() {
  let newest = fs.statSync(path.join(ROOT, "package.json")).mtimeMs;
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mjs|json)$/.test(e.name)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  for (const d of SOURCES) walk(path.join(ROOT, d));
  return newest;
}

function freshBundle() {
  if (process.env.BOOTGATE_NO_BUNDLE) return false;
  try {
    const newest = newestSource();
    if (fs.statSync(BUNDLE).mtimeMs >= newest && fs.statSync(WORKER_BUNDLE).mtimeMs >= newest) return true;
  } catch { /* no bundle yet */ }
  try {
    const esbuild = createRequire(import.meta.url)("esbuild");
    fs.mkdirSync(path.dirname(BUNDLE), { recursive: true });
    // One build of both entries (esbuild parses the shared sources once), then each file renamed into place.
    const tmp = `${BUNDLE}.${process.pid}.tmp`;
    esbuild.buildSync({
      entryPoints: { bootgate: path.join(ROOT, "emu", "cli.ts"), "batch-worker": path.join(ROOT, "emu", "batch-worker.ts") },
      outdir: tmp, outExtension: { ".js": ".mjs" }, bundle: true, platform: "node",
      format: "esm", target: "node20", packages: "external", logLevel: "silent",
    });
    fs.renameSync(path.join(tmp, "batch-worker.mjs"), WORKER_BUNDLE);
    fs.renameSync(path.join(tmp, "bootgate.mjs"), BUNDLE);
    fs.rmSync(tmp, { recursive: true, force: true });
    return true;
  } catch {
    return false;
  }
}

let main;
if (freshBundle()) {
  ({ main } = await import(pathToFileURL(BUNDLE).href));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("./cli.ts"));
}
process.exitCode = await main(process.argv.slice(2));
