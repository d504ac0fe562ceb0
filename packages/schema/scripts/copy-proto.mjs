// Ships proto/celeriac/v1/options.proto inside the package, so `import "celeriac/v1/options.proto"`
// resolves for users of the published package (the repository's proto/ is the source).
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const target = join(pkg, "proto", "celeriac", "v1");
mkdirSync(target, { recursive: true });
copyFileSync(join(pkg, "..", "..", "proto", "celeriac", "v1", "options.proto"), join(target, "options.proto"));
