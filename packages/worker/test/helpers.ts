import { randomUUID } from "node:crypto";
import {
  celeryJsonCodec,
  createEnvelope,
  createMemoryResultBackend,
  createMemoryTransport,
  type MemoryResultBackend,
  type MemoryTransport,
  type MemoryTransportOptions,
  type ResultMeta,
  type Transport,
  type TransportCapabilities,
} from "@celeriac/core";
import type { TaskEmbed, TaskHeaders, WireMessage } from "@celeriac/core/transport";
import { createWorker, type CreateWorkerOptions, type LogRecord, type Worker } from "../src/index.js";

export interface Harness {
  transport: MemoryTransport;
  backend: MemoryResultBackend;
  /** Every meta stored, in order, so tests can see RETRY/STARTED states that later get replaced. */
  history: ResultMeta[];
  logs: LogRecord[];
  worker(options?: Partial<CreateWorkerOptions>): Worker;
  send(task: string, init?: SendInit): Promise<string>;
  cleanup(): Promise<void>;
}

export interface SendInit {
  id?: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  headers?: Partial<TaskHeaders>;
  embed?: Partial<TaskEmbed>;
  queue?: string;
}

export function message(task: string, init: SendInit = {}): { id: string; message: WireMessage } {
  const id = init.id ?? randomUUID();
  const env = createEnvelope({
    task,
    id,
    args: init.args ?? [],
    kwargs: init.kwargs ?? {},
    ...(init.headers ? { headers: init.headers } : {}),
    ...(init.embed ? { embed: init.embed } : {}),
  });
  return { id, message: celeryJsonCodec.encode(env) };
}

export function harness(transportOptions: MemoryTransportOptions = {}): Harness {
  const transport = createMemoryTransport(transportOptions);
  const backend = createMemoryResultBackend();
  const history: ResultMeta[] = [];
  const logs: LogRecord[] = [];
  const store = backend.store.bind(backend);
  backend.store = async (meta: ResultMeta) => {
    history.push(meta);
    await store(meta);
  };
  const workers: Worker[] = [];
  return {
    transport,
    backend,
    history,
    logs,
    worker(options = {}) {
      const w = createWorker({ transport, resultBackend: backend, logger: (r) => logs.push(r), logLevel: "debug", ...options });
      workers.push(w);
      return w;
    },
    async send(task, init = {}) {
      const m = message(task, init);
      await transport.publish(init.queue ?? "celery", m.message);
      return m.id;
    },
    async cleanup() {
      await Promise.all(workers.map((w) => w.stop({ graceMs: 0 })));
      await transport.close();
    },
  };
}

/** The same transport with some capabilities switched off, to exercise the fallbacks. */
export function withCapabilities(transport: MemoryTransport, overrides: Partial<TransportCapabilities>): Transport {
  const capabilities = { ...transport.capabilities, ...overrides };
  return new Proxy(transport, {
    get(target, prop) {
      if (prop === "capabilities") return capabilities;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until `check` returns true; fails the test with `what` after `timeoutMs`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await delay(5);
  }
}

export async function result(h: Harness, id: string, timeoutMs = 5000): Promise<ResultMeta> {
  return h.backend.waitFor(id, { timeoutMs });
}

// Python isoformat(): microseconds, left out when zero.
export const ISO_NAIVE_MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?$/;
