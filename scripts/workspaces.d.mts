export declare const ROOT: string;
export interface WorkspacePackage {
  /** Folder relative to the repository root, e.g. "packages/core". */
  dir: string;
  name: string;
  exports: Record<string, unknown>;
}
export declare function workspacePackages(): WorkspacePackage[];
export declare function sourceEntryPoints(): { specifier: string; source: string }[];
