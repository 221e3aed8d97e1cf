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
    if (fs.statSync(BUNDLE).mtimeMs >= newestSource()) return true;
  } catch { /* no bundle yet */ }
  try {
    const esbuild = createRequire(import.meta.url)("esbuild");
    fs.mkdirSync(path.dirname(BUNDLE), { recursive: true });
    const tmp = `${BUNDLE}.${process.pid}.tmp`;
    esbuild.buildSync({
      entryPoints: [path.join(ROOT, "emu", "cli.ts")], outfile: tmp, bundle: true, platform: "node",
      format: "esm", target: "node20", packages: "external", logLevel: "silent",
    });
    fs.renameSync(tmp, BUNDLE);
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
