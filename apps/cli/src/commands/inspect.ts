import { CeleriacError, createControl, type Control, type ControlReplies } from "@celeriac/core";
import { pyRepr, pyStringify } from "@celeriac/core/transport";
import { openConnections } from "../config.js";

/** What `inspect` and `control` share: broker and Celery's Remote Control Options. */
export interface RemoteControlCliOptions {
  broker?: string;
  destination?: string;
  timeout?: string;
  json?: boolean;
}

/** Celery's exit code when no worker answered (celery/platforms.py EX_UNAVAILABLE). */
const EX_UNAVAILABLE = 69;

/** Inspect commands Celery's worker answers (celery/worker/control.py, `inspect_command`). */
const INSPECT_METHODS = ["ping", "stats", "active", "reserved", "scheduled", "registered", "active_queues", "clock", "revoked", "conf", "report"] as const;

/** Runs `use` with a control client on the broker, and closes both after. */
export async function withControl<T>(opts: RemoteControlCliOptions, use: (control: Control, timeoutMs: number) => Promise<T>): Promise<T> {
  const timeoutMs = opts.timeout === undefined ? 1000 : Number(opts.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new CeleriacError("invalid_argument", `--timeout must be a positive number of seconds, got ${JSON.stringify(opts.timeout)}`);
  const conn = await openConnections({ broker: opts.broker, resultBackend: "none" });
  try {
    if (!conn.transport.exchanges) {
      throw new CeleriacError("unsupported", `remote control needs a broker with exchanges (amqp://, redis://); ${conn.transport.name} has none`);
    }
    await conn.transport.connect();
    const control = createControl(conn.transport, { timeoutMs });
    try {
      return await use(control, timeoutMs);
    } finally {
      await control.close();
    }
  } finally {
    await conn.close();
  }
}

/** `-d a,b` as Celery's COMMA_SEPARATED_LIST. */
export function destinationOf(opts: RemoteControlCliOptions): string[] | undefined {
  if (opts.destination === undefined) return undefined;
  const list = opts.destination
    .split(",")
    .map((d) => d.trim())
    .filter(Boolean);
  return list.length > 0 ? list : undefined;
}

// ---- Celery's output (celery/bin/base.py `CLIContext.pretty`, celery/bin/control.py) -----------

function indent(text: string, by: number): string {
  return text
    .split("\n")
    .map((line) => " ".repeat(by) + line)
    .join("\n");
}

function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeysDeep((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** `pretty(n)`: status and text of one node's reply. */
export function prettyReply(n: unknown): { status: "OK" | "ERROR"; text: string } {
  if (Array.isArray(n)) {
    return { status: "OK", text: n.length === 0 ? "- empty -" : n.map((item) => `* ${typeof item === "string" ? item : pyRepr(item)}`).join("\n") };
  }
  if (typeof n === "object" && n !== null) {
    const o = n as Record<string, unknown>;
    if ("ok" in o) return { status: "OK", text: indent(prettyReply(o["ok"]).text, 4) };
    if ("error" in o) return { status: "ERROR", text: indent(prettyReply(o["error"]).text, 4) };
    // json.dumps(n, sort_keys=True, indent=4)
    return { status: "OK", text: JSON.stringify(sortKeysDeep(n), null, 4) };
  }
  if (typeof n === "string") return { status: "OK", text: n };
  return { status: "OK", text: pyRepr(n) };
}

/** `_say_remote_command_reply(show_reply=True)`: `->  host: OK` and the reply indented. */
export function sayReply(hostname: string, reply: unknown): void {
  const { status, text } = prettyReply(reply);
  process.stdout.write(`->  ${hostname}: ${status}\n${indent(text, 4)}\n`);
}

/** Nobody answered: Celery's message and exit code. */
export function noReplies(): void {
  process.stderr.write("Error: No nodes replied within time constraint\n");
  process.exitCode = EX_UNAVAILABLE;
}

/** `celeriac inspect <method>`: asks the workers, prints each answer as it comes, like `celery inspect`. */
export async function inspectCommand(method: string, extra: string[], opts: RemoteControlCliOptions): Promise<void> {
  if (!(INSPECT_METHODS as readonly string[]).includes(method)) {
    throw new CeleriacError("invalid_argument", `inspect: unknown command ${JSON.stringify(method)}; known: ${INSPECT_METHODS.join(", ")}`);
  }
  // Celery's `registered` takes task attribute names as variadic arguments; the others take none.
  const args: Record<string, unknown> = method === "registered" && extra.length > 0 ? { taskinfoitems: extra } : {};
  if (method !== "registered" && extra.length > 0) throw new CeleriacError("invalid_argument", `inspect ${method} takes no arguments`);
  const replies: ControlReplies = await withControl(opts, (control) => {
    const destination = destinationOf(opts);
    return control.broadcast(method, args, {
      ...(destination ? { destination } : {}),
      ...(opts.json ? {} : { onReply: sayReply }),
    });
  });
  const count = Object.keys(replies).length;
  if (count === 0) return noReplies();
  if (opts.json) {
    process.stdout.write(`${pyStringify(replies)}\n`);
    return;
  }
  process.stdout.write(`\n${count} ${count === 1 ? "node" : "nodes"} online.\n`);
}
