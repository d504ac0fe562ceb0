import { afterEach, describe, expect, it } from "vitest";
import type { TaskInfo, WorkerStats } from "@celeriac/core";
import { encodeControlMessage, pyParse, type WireMessage } from "@celeriac/core/transport";
import type { Worker } from "../src/index.js";
import { globToRegExp, hostnameMatches, isAddressedTo, MailboxNode } from "../src/remote-control.js";
import { harness, result, until, type Harness } from "./helpers.js";

/*
 * The mailbox's command logic against a real worker on the memory transport (which has no
 * exchanges): requests go into MailboxNode.handle as the broker would hand them over, replies are
 * captured where the addon would publish them. The broker round trip is covered by the AMQP and
 * Redis suites, with Python's own `celery inspect` / `celery control`.
 */

let h: Harness;
afterEach(async () => h?.cleanup());

interface SentReply {
  exchange: string;
  routingKey: string;
  message: WireMessage;
  body: Record<string, unknown>;
}

const HOST = "ts-node@unit";

function setup(worker: Worker): { node: MailboxNode; replies: SentReply[] } {
  const replies: SentReply[] = [];
  const node = new MailboxNode({
    worker,
    transportName: "memory",
    log: () => {},
    async sendReply(exchange, routingKey, message) {
      replies.push({ exchange, routingKey, message, body: pyParse(new TextDecoder().decode(message.body)) as Record<string, unknown> });
    },
  });
  return { node, replies };
}

let ticketCounter = 0;
function request(method: string, args: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): WireMessage {
  const body = {
    method,
    arguments: args,
    destination: null,
    pattern: null,
    matcher: null,
    ticket: `ticket-${++ticketCounter}`,
    reply_to: { exchange: "reply.celery.pidbox", routing_key: "client-oid" },
    ...extra,
  };
  return encodeControlMessage(body, { clock: 41, expires: Date.now() / 1000 + 1 }, 2);
}

async function ask(node: MailboxNode, replies: SentReply[], method: string, args: Record<string, unknown> = {}): Promise<unknown> {
  const before = replies.length;
  await node.handle(request(method, args));
  expect(replies.length).toBe(before + 1);
  return replies[replies.length - 1]!.body[HOST];
}

function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe("mailbox node", () => {
  it("answers ping on the reply exchange with the routing key, ticket and clock kombu sends", async () => {
    h = harness();
    const w = h.worker({ hostname: HOST });
    const { node, replies } = setup(w);
    await node.handle(request("ping"));
    expect(replies).toHaveLength(1);
    const r = replies[0]!;
    expect(r.exchange).toBe("reply.celery.pidbox");
    expect(r.routingKey).toBe("client-oid");
    expect(r.body).toEqual({ [HOST]: { ok: "pong" } });
    expect(r.message.contentType).toBe("application/json");
    expect(r.message.properties.deliveryMode).toBe(1);
    expect(r.message.headers["ticket"]).toBe(`ticket-${ticketCounter}`);
    // Clock: forwarded on receipt, adjusted past the request's 41, forwarded again for the reply.
    expect(r.message.headers["clock"]).toBeGreaterThan(41);
  });

  it("acts only on requests addressed to it: destination list, glob and pcre patterns", async () => {
    h = harness();
    const w = h.worker({ hostname: HOST });
    const { node, replies } = setup(w);
    await node.handle(request("ping", {}, { destination: ["someone@else"] }));
    await node.handle(request("ping", {}, { pattern: "other*", matcher: "glob" }));
    await node.handle(request("ping", {}, { pattern: "x", matcher: "pcre" }));
    expect(replies).toHaveLength(0);
    await node.handle(request("ping", {}, { destination: ["someone@else", HOST] }));
    await node.handle(request("ping", {}, { pattern: "ts-*@unit", matcher: "glob" }));
    await node.handle(request("ping", {}, { pattern: "ts-no", matcher: "pcre" }));
    expect(replies).toHaveLength(3);
  });

  it("answers an unknown method and a bad call with Celery's error replies", async () => {
    h = harness();
    const { node, replies } = setup(h.worker({ hostname: HOST }));
    expect(await ask(node, replies, "nosuch")).toEqual({ error: "KeyError('nosuch')" });
    expect(await ask(node, replies, "revoke")).toEqual({ error: `TypeError("revoke() missing 1 required positional argument: 'task_id'")` });
  });

  it("drops undecodable or malformed requests without throwing or replying", async () => {
    h = harness();
    const { node, replies } = setup(h.worker({ hostname: HOST }));
    const bad: WireMessage[] = [
      { ...request("ping"), contentType: "application/x-python-serialize" },
      { ...request("ping"), body: new TextEncoder().encode("{not json") },
      encodeControlMessage([1, 2, 3], {}, 2),
      encodeControlMessage({ arguments: {} }, {}, 2),
      request("ping", {}, { pattern: "x", matcher: "nosuchmatcher" }),
      request("ping", {}, { pattern: "(", matcher: "pcre" }),
    ];
    for (const m of bad) await node.handle(m);
    expect(replies).toHaveLength(0);
    // Still answering afterwards.
    expect(await ask(node, replies, "ping")).toEqual({ ok: "pong" });
  });

  it("revoke: flags one id or a list, in Celery's words; the worker then skips them", async () => {
    h = harness();
    const runs: string[] = [];
    const w = h.worker({ hostname: HOST }).register("tasks.x", (ctx) => void runs.push(ctx.id));
    const { node, replies } = setup(w);
    await w.start();
    expect(await ask(node, replies, "revoke", { task_id: "a1", terminate: false, signal: "SIGTERM" })).toEqual({ ok: "tasks a1 flagged as revoked" });
    expect(await ask(node, replies, "revoke", { task_id: ["b1", "b2", "b1"] })).toEqual({ ok: "tasks b1, b2 flagged as revoked" });
    expect(w.isRevoked("a1") && w.isRevoked("b1") && w.isRevoked("b2")).toBe(true);
    expect(await ask(node, replies, "revoke", { task_id: ["c1"], terminate: true })).toEqual({ ok: "terminate: tasks unknown" });
    await h.send("tasks.x", { id: "b2" });
    const other = await h.send("tasks.x");
    expect((await result(h, "b2")).status).toBe("REVOKED");
    expect((await result(h, other)).status).toBe("SUCCESS");
    expect(runs).toEqual([other]);
  });

  it("a revoke cast without reply_to still revokes and sends nothing", async () => {
    h = harness();
    const w = h.worker({ hostname: HOST });
    const { node, replies } = setup(w);
    await node.handle(
      encodeControlMessage({ method: "revoke", arguments: { task_id: "quiet" }, destination: null, pattern: null, matcher: null }, { clock: 1 }, 2),
    );
    expect(w.isRevoked("quiet")).toBe(true);
    expect(replies).toHaveLength(0);
  });

  it("revoke with terminate aborts a running task and names it", async () => {
    h = harness();
    const w = h
      .worker({ hostname: HOST })
      .register("tasks.forever", (ctx) => new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason as Error))));
    const { node, replies } = setup(w);
    await w.start();
    const id = await h.send("tasks.forever");
    await until("running", () => w.heldTasks().some((t) => t.id === id && t.phase === "running"));
    expect(await ask(node, replies, "terminate", { signal: "SIGKILL", task_id: [id] })).toEqual({ ok: `terminate: ${id}` });
    expect((await result(h, id)).status).toBe("REVOKED");
  });

  it("active, reserved, scheduled and registered report what the worker holds, shaped as Request.info()", async () => {
    h = harness();
    const g = gate();
    const w = h.worker({ hostname: HOST, concurrency: 1 });
    w.register("tasks.block", async () => g.wait);
    w.register("tasks.other", () => 1);
    w.register("celery.builtin_like", () => 1);
    const { node, replies } = setup(w);
    await w.start();
    const t0 = Date.now();
    const running = await h.send("tasks.block", { args: [1, "two"], kwargs: { k: true } });
    await until("running", () => w.heldTasks().some((t) => t.id === running && t.phase === "running"));
    const waiting = await h.send("tasks.other", { args: [3] });
    const eta = new Date(Date.now() + 60_000).toISOString();
    const later = await h.send("tasks.other", { headers: { eta } });
    await until("held", () => w.heldTasks().length === 3);

    const active = (await ask(node, replies, "active")) as TaskInfo[];
    expect(active).toHaveLength(1);
    const a = active[0]!;
    expect(a).toMatchObject({
      id: running,
      name: "tasks.block",
      type: "tasks.block",
      args: [1, "two"],
      kwargs: { k: true },
      hostname: HOST,
      acknowledged: true,
      delivery_info: { exchange: "", routing_key: "celery", redelivered: false },
      worker_pid: process.pid,
    });
    expect(Object.keys(a).sort()).toEqual(["acknowledged", "args", "delivery_info", "hostname", "id", "kwargs", "name", "time_start", "type", "worker_pid"]);
    expect(a.time_start).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) - 1);
    expect(a.time_start).toBeLessThanOrEqual(Date.now() / 1000);
    const safe = (await ask(node, replies, "active", { safe: true })) as TaskInfo[];
    expect(safe[0]!.args).toBe("[1, 'two']");

    const reserved = (await ask(node, replies, "reserved")) as TaskInfo[];
    expect(reserved.map((t) => t.id)).toEqual([waiting]);
    expect(reserved[0]).toMatchObject({ time_start: null, worker_pid: null, args: [3] });

    const scheduled = (await ask(node, replies, "dump_schedule")) as { eta: string; priority: number; request: TaskInfo }[];
    expect(scheduled).toHaveLength(1);
    expect(scheduled[0]).toMatchObject({ priority: 6, request: { id: later, name: "tasks.other" } });
    expect(Date.parse(scheduled[0]!.eta)).toBe(Date.parse(eta));

    expect(await ask(node, replies, "registered")).toEqual(["tasks.block", "tasks.other"]);
    expect(await ask(node, replies, "registered", { builtins: true })).toEqual(["celery.builtin_like", "tasks.block", "tasks.other"]);
    g.open();
  });

  it("stats: totals per task name and the keys Celery's stats() has", async () => {
    h = harness();
    const w = h
      .worker({ hostname: HOST, concurrency: 3, prefetchMultiplier: 2 })
      .register("tasks.a", () => 1)
      .register("tasks.b", () => 2);
    const { node, replies } = setup(w);
    await w.start();
    const ids = [await h.send("tasks.a"), await h.send("tasks.a"), await h.send("tasks.b")];
    for (const id of ids) expect((await result(h, id)).status).toBe("SUCCESS");
    const s = (await ask(node, replies, "stats")) as WorkerStats;
    expect(s.total).toEqual({ "tasks.a": 2, "tasks.b": 1 });
    expect(s.pid).toBe(process.pid);
    expect(s.clock).toMatch(/^\d+$/);
    expect(s.uptime).toBeGreaterThanOrEqual(0);
    expect(s.pool).toMatchObject({ "max-concurrency": 3, processes: [process.pid] });
    expect(s.prefetch_count).toBe(6);
    expect(s.broker).toEqual({ transport: "memory" });
    expect(Object.keys(s.rusage as object).sort()).toEqual(
      [
        "idrss",
        "inblock",
        "isrss",
        "ixrss",
        "majflt",
        "maxrss",
        "minflt",
        "msgrcv",
        "msgsnd",
        "nivcsw",
        "nsignals",
        "nswap",
        "nvcsw",
        "oublock",
        "stime",
        "utime",
      ].sort(),
    );
    expect(Object.keys(s).sort()).toEqual(["broker", "clock", "pid", "pool", "prefetch_count", "rusage", "total", "uptime"]);
  });

  it("clock and hello (mingle): revoked ids from a starting Python worker are taken over", async () => {
    h = harness();
    const w = h.worker({ hostname: HOST });
    const { node, replies } = setup(w);
    const c = (await ask(node, replies, "clock")) as { clock: number };
    expect(c.clock).toBeGreaterThan(41);
    const hello = (await ask(node, replies, "hello", { from_node: "py@x", revoked: { "from-py": [123.4, "from-py"] } })) as Record<string, unknown>;
    expect(hello).toMatchObject({ revoked: {} });
    expect(typeof hello["clock"]).toBe("number");
    expect(w.isRevoked("from-py")).toBe(true);
  });

  it("shutdown: no reply (Celery raises WorkerShutdown before replying), the worker stops", async () => {
    h = harness();
    const w = h.worker({ hostname: HOST });
    const { node, replies } = setup(w);
    await w.start();
    await node.handle(request("shutdown"));
    expect(replies).toHaveLength(0);
    await w.closed;
    expect(w.state).toBe("stopped");
  });
});

describe("hostname matchers (kombu/matcher.py)", () => {
  it("glob is fnmatch: whole name, *, ?, [seq], [!seq], other characters literal", () => {
    expect(globToRegExp("celery@*").test("celery@host.example")).toBe(true);
    expect(globToRegExp("celery@*").test("xcelery@host")).toBe(false);
    expect(globToRegExp("w?@h").test("w1@h")).toBe(true);
    expect(globToRegExp("w[12]@h").test("w2@h")).toBe(true);
    expect(globToRegExp("w[!12]@h").test("w2@h")).toBe(false);
    expect(globToRegExp("a.b").test("axb")).toBe(false);
    expect(globToRegExp("a+(b)").test("a+(b)")).toBe(true);
  });

  it("pcre is re.match: anchored at the start only", () => {
    expect(hostnameMatches("worker1@host", "worker\\d", "pcre")).toBe(true);
    expect(hostnameMatches("my-worker1@host", "worker\\d", "pcre")).toBe(false);
    expect(() => hostnameMatches("a", "a", "regex")).toThrow(/matcher/);
  });

  it("destination wins over pattern; neither means everyone", () => {
    expect(isAddressedTo("a@h", { destination: ["a@h"], pattern: "zzz", matcher: "glob" })).toBe(true);
    expect(isAddressedTo("a@h", { destination: null, pattern: null, matcher: null })).toBe(true);
    expect(isAddressedTo("a@h", { destination: [], pattern: "b*", matcher: "glob" })).toBe(false);
  });
});
