import { maskUrl } from "@celeriac/core/transport";
export type LogLevel = "debug" | "info" | "warn" | "error";

/** One structured log line: a level, a message and flat fields (taskId, task, queue, ...). */
export interface LogRecord {
  level: LogLevel;
  msg: string;
  [field: string]: unknown;
}

/** Where the worker logs: a function, or an object with a `log` method (adapters for pino etc.). */
export type Logger = ((record: LogRecord) => void) | { log(record: LogRecord): void };

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** JSON lines on stderr: stdout stays free for the application, and every line parses. */
export function jsonLinesLogger(stream: { write(line: string): unknown } = process.stderr): Logger {
  return (record) => {
    let line: string;
    try {
      line = JSON.stringify({ time: new Date().toISOString(), ...record });
    } catch {
      line = JSON.stringify({ time: new Date().toISOString(), level: record.level, msg: record.msg });
    }
    stream.write(maskUrl(line) + "\n");
  };
}

export type LogFn = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** Binds a logger to a minimum level; a throwing logger must never take a task down with it. */
export function makeLog(logger: Logger | null, minLevel: LogLevel, base: Record<string, unknown>): LogFn {
  if (logger === null) return () => {};
  const emit = typeof logger === "function" ? logger : (r: LogRecord) => logger.log(r);
  const min = RANK[minLevel];
  return (level, msg, fields) => {
    if (RANK[level] < min) return;
    try {
      emit({ level, msg, ...base, ...fields });
    } catch {
      // Logging is best effort.
    }
  };
}
