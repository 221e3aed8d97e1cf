// The tool's version, from package.json (one source of truth).
import { createRequire } from "node:module";
const pkg = createRequire(import.meta.url)("../package.json") as { version: string };
export const VERSION: string = pkg.version;
