import { createRequire } from "node:module";

/** This package's version, read from its package.json (the one place versions live; Changesets bumps it). */
export const VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;
