// The tool's version and where the project lives (one source of truth each).
import * as path from "node:path";
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;

/** The project root: from the launcher when running as a bundle, else relative to this file. */
export const PROJECT_ROOT: string = process.env.BOOTGATE_ROOT ?? path.resolve(import.meta.dirname, "..");
