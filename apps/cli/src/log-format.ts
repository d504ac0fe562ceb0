import { CeleriacError } from "@celeriac/core";
import { maskUrl, truncatedRepr } from "@celeriac/core/transport";
import type { LogLevel, LogRecord, Worker } from "@celeriac/worker";

/** Celery's level names, as `-l/--loglevel` takes them (any case), mapped to the worker's. */
const LEVELS: Record<string, LogLevel> = { debug: "debug", info: "info", warning: "warn", warn: "warn", error: "error", critical: "error", fatal: "error" };

export function parseLogLevel(value: string): LogLevel {
  const level = LEVELS[value.toLowerCase()];
  if (!level) throw new CeleriacError("invalid_argument", `--loglevel must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got ${JSON.stringify(value)}`);
  return level;
}

/** Celery's `%(levelname)s`. */
const LEVEL_NAMES: Record<LogLevel, string> = { debug: "DEBUG", info: "INFO", warn: "WARNING", error: "ERROR" };
/** Celery's ColorFormatter colours (celery/utils/log.py): INFO plain. */
const COLOURS: Partial<Record<LogLevel, string>> = { debug: "\x1b[34m", warn: "\x1b[33m", error: "\x1b[31m" };

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** Celery's log time, `%(asctime)s`: local time, comma before the milliseconds. */
export function celeryLogTime(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())},${pad(d.getMilliseconds(), 3)}`;
}

/**
 * Lines in the shape of Celery's worker log (`[%(asctime)s: %(levelname)s/%(processName)s]
 * %(message)s`), for a person at a terminal; colour only when `colour` is set. The result of a
 * succeeded task, which Celery prints after the message, comes from the worker's task-succeeded
 * event, emitted just before the log line.
 */
export function celeryTextLogger(
  stream: { write(s: string): unknown },
  colour: boolean,
): { logger: (record: LogRecord) => void; attach(worker: Worker, level: LogLevel): void } {
  const results = new Map<string, unknown>();
  const attach = (worker: Worker, level: LogLevel) => {
    // Without info lines nothing would take the results out again.
    if (level !== "debug" && level !== "info") return;
    worker.subscribe(
      (event) => {
        if (event.type === "task-succeeded") results.set(event.taskId, event.result);
      },
      ["task-succeeded"],
    );
  };
  const logger = (record: LogRecord) => {
    let msg = record.msg;
    const taskId = typeof record["taskId"] === "string" ? record["taskId"] : null;
    if (taskId && results.has(taskId) && / succeeded in /.test(msg)) {
      msg += `: ${truncatedRepr(results.get(taskId))}`;
      results.delete(taskId);
    }
    const line = `[${celeryLogTime(new Date())}: ${LEVEL_NAMES[record.level]}/MainProcess] ${msg}`;
    const c = colour ? COLOURS[record.level] : undefined;
    const masked = maskUrl(line);
    stream.write(c ? `${c}${masked}\x1b[0m\n` : `${masked}\n`);
  };
  return { logger, attach };
}
