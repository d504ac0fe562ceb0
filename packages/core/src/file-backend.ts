import { mkdirSync } from "node:fs";
import { readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ResultMeta } from "./envelope.js";
import { CeleriacError } from "./errors.js";
import { pollForResult } from "./memory-backend.js";
import { assertKnownOptions, optionKeys } from "./options.js";
import { parseResultMeta, stringifyCeleryJson } from "./result-json.js";
import type { ResultBackend } from "./transport.js";

export interface FileResultBackendOptions {
  /** Directory holding one file per task, as Celery's `file://` backend lays it out. */
  directory: string;
  /** Longest pause between two reads while waiting for a result. */
  pollIntervalMs?: number;
}

/**
 * Celery's filesystem result backend (`result_backend = "file:///dir"`): one JSON file named
 * `celery-task-meta-<task id>` per task. A Python client and a Celeriac client on the same
 * directory read each other's results, which makes it the broker-free way to share results with
 * Python (Celery's SQLAlchemy result backend pickles its `result` column, which we never read).
 */
export class FileResultBackend implements ResultBackend {
  readonly name = "file";
  private readonly directory: string;
  private readonly pollIntervalMs: number;

  constructor(options: FileResultBackendOptions) {
    assertKnownOptions("createFileResultBackend", options, optionKeys<FileResultBackendOptions>({ directory: true, pollIntervalMs: true }));
    if (!options.directory) throw new CeleriacError("invalid_argument", "createFileResultBackend: directory is required");
    this.directory = options.directory;
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
    mkdirSync(this.directory, { recursive: true });
  }

  private path(taskId: string): string {
    if (!/^[\w.-]+$/.test(taskId)) throw new CeleriacError("invalid_argument", `task id ${JSON.stringify(taskId)} cannot name a file`);
    return join(this.directory, `celery-task-meta-${taskId}`);
  }

  async store(meta: ResultMeta): Promise<void> {
    const current = await this.get(meta.task_id);
    if (current?.status === "SUCCESS") return;
    const target = this.path(meta.task_id);
    // Write then rename so a reader never sees half a file.
    const tmp = `${target}.${process.pid}.${Date.now()}.tmp`;
    // Celery's dialect, not JSON.stringify: big integers exact, NaN/Infinity as Python writes them.
    await writeFile(tmp, stringifyCeleryJson(meta));
    await rename(tmp, target);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    let text: string;
    try {
      text = await readFile(this.path(taskId), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw CeleriacError.from(err, "connection");
    }
    return parseResultMeta(text, `result file for ${taskId}`);
  }

  waitFor(taskId: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<ResultMeta> {
    return pollForResult((id) => this.get(id), taskId, { ...options, maxIntervalMs: this.pollIntervalMs });
  }

  async forget(taskId: string): Promise<void> {
    await unlink(this.path(taskId)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  }

  async close(): Promise<void> {}
}

export function createFileResultBackend(options: FileResultBackendOptions): FileResultBackend {
  return new FileResultBackend(options);
}

/** `file:///abs/dir` (Celery's spelling) -> a FileResultBackend. */
export function fileResultBackendFromUrl(url: string): FileResultBackend {
  if (!url.startsWith("file://")) throw new CeleriacError("invalid_argument", `not a file:// result backend URL: ${url}`);
  const directory = url.startsWith("file://localhost/") ? url.slice(16) : url.slice(7);
  return createFileResultBackend({ directory });
}
