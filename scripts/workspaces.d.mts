export declare const ROOT: string;
export interface WorkspacePackage {
  /** Folder relative to the repository root, e.g. "packages/core". */
  dir: string;
  /** The same folder, relative (the name the packaging scripts use). */
  rel: string;
  /** The folder as an absolute path. */
  path: string;
  /** The package.json. */
  manifest: Record<string, any>;
  name: string;
  exports: Record<string, unknown>;
  /** `main`, for a private package that is used from its sources. */
  main?: string;
}
export declare function workspacePackages(): WorkspacePackage[];
export declare function sourceEntryPoints(): { specifier: string; source: string }[];
