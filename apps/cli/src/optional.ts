import { CeleriacError } from "@celeriac/core";

/**
 * Imports a package the CLI does not depend on (metrics, schema tooling): a user who does not use
 * the feature does not install it, and one who does is told the exact package to add.
 */
export async function importOptional<T>(pkg: string, feature: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if ((e.code === "ERR_MODULE_NOT_FOUND" || e.code === "MODULE_NOT_FOUND") && String(e.message).includes(`'${pkg}'`)) {
      throw new CeleriacError("unsupported", `${feature} needs ${pkg}: npm install ${pkg}`, { cause: err });
    }
    throw err;
  }
}
