import { celeryJsonCodec, createEnvelope, defineTask, Reject } from "@celeriac/core";
import { afterEach, describe, expect, it } from "vitest";
import { harness, result, until, type Harness } from "./helpers.js";

let h: Harness;
afterEach(async () => h?.cleanup());

describe("messages that cannot run", () => {
  it("unknown task: FAILURE NotRegistered and the delivery dead-lettered, not requeued", async () => {
    h = harness();
    const w = h.worker().register("tasks.known", () => 1);
    await w.start();
    const id = await h.send("tasks.nobody_knows", { args: [1] });
    const meta = await result(h, id);
    expect(meta.status).toBe("FAILURE");
    expect(meta.result).toEqual({ exc_type: "NotRegistered", exc_message: ["tasks.nobody_knows"], exc_module: "celery.exceptions" });
    await until("dead-lettered", () => h.transport.deadLetters.length === 1);
    expect(h.transport.deadLetters[0]!.message.headers["id"]).toBe(id);
    expect(h.transport.deadLetters[0]!.reason).toContain("NotRegistered");
    expect(h.transport.size("celery") + h.transport.inflightCount("celery")).toBe(0);
    expect(h.logs.some((l) => l.level === "error" && l.msg.includes("unregistered task") && l.msg.includes("tasks.nobody_knows"))).toBe(true);
    expect(w.counters.rejected).toBe(1);
  });

  it("malformed message: rejected with a readable reason, FAILURE when the id is readable, worker keeps serving", async () => {
    h = harness();
    const w = h.worker().register("tasks.ok", () => "fine");
    await w.start();
    const good = celeryJsonCodec.encode(createEnvelope({ task: "tasks.ok", id: "bad-1" }));
    await h.transport.publish("celery", { ...good, body: new TextEncoder().encode("[[], {}, {") });
    await h.transport.publish("celery", { ...good, headers: {}, contentType: "application/x-python-serialize" });
    const id = await h.send("tasks.ok");
    expect(await result(h, id)).toMatchObject({ status: "SUCCESS", result: "fine" });
    await until("two rejected", () => h.transport.deadLetters.length === 2);
    const reasons = h.transport.deadLetters.map((d) => d.reason);
    expect(reasons[0]).toMatch(/malformed message: .*JSON/);
    expect(reasons[1]).toMatch(/pickle/);
    const failed = await h.backend.get("bad-1");
    expect(failed?.status).toBe("FAILURE");
    expect(failed?.result).toMatchObject({ exc_type: "InvalidTaskError", exc_module: "celery.exceptions" });
    expect(w.state).toBe("running");
  });

  it("garbage eta, garbage expires and an object body are refused with one log line each, never run, and leave the queue empty", async () => {
    h = harness();
    const ran: string[] = [];
    const w = h.worker().register("tasks.ok", (ctx) => void ran.push(ctx.id));
    await w.start();
    const enc = new TextEncoder();
    const bad = (id: string, change: Record<string, unknown>, body?: string) => {
      const m = celeryJsonCodec.encode(createEnvelope({ task: "tasks.ok", id }));
      return h.transport.publish("celery", { ...m, headers: { ...m.headers, ...change }, ...(body ? { body: enc.encode(body) } : {}) });
    };
    await bad("bad-eta", { eta: "not a date" });
    await bad("bad-expires", { expires: "garbage" });
    await bad("bad-body", {}, '{"hello": "world"}');
    await bad("bad-args", {}, '[{"a": 1}, {}, null]');
    const good = await h.send("tasks.ok");
    expect(await result(h, good)).toMatchObject({ status: "SUCCESS" });
    await until("four dead-lettered", () => h.transport.deadLetters.length === 4);
    expect(ran).toEqual([good]);
    expect(h.transport.size("celery") + h.transport.inflightCount("celery")).toBe(0);
    for (const [id, reason] of [
      ["bad-eta", /header "eta" "not a date" is not an ISO 8601 time/],
      ["bad-expires", /header "expires" "garbage" is not an ISO 8601 time/],
      ["bad-body", /object without "args"/],
      ["bad-args", /args must be an array/],
    ] as const) {
      const lines = h.logs.filter((l) => l.taskId === id);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: "error", task: "tasks.ok" });
      expect(lines[0]!.msg).toMatch(reason);
      expect(await h.backend.get(id)).toMatchObject({ status: "FAILURE", result: { exc_type: "InvalidTaskError" } });
    }
  });

  it("a refused message with only a correlation id (protocol 1 pickle) still gets its FAILURE", async () => {
    h = harness();
    const w = h.worker().register("tasks.ok", () => "fine");
    await w.start();
    await h.transport.publish("celery", {
      body: new Uint8Array([0x80, 0x02]),
      contentType: "application/x-python-serialize",
      contentEncoding: "binary",
      headers: {},
      properties: { correlationId: "v1-pickle", replyTo: "client-reply-queue" },
    });
    await until("rejected", () => h.transport.deadLetters.length === 1);
    const failed = await result(h, "v1-pickle");
    expect(failed).toMatchObject({ status: "FAILURE", result: { exc_type: "InvalidTaskError" } });
    expect(String((failed.result as { exc_message: unknown[] }).exc_message[0])).toMatch(/pickle/);
    expect(w.state).toBe("running");
  });

  it("Reject in a late-ack task dead-letters the message; Reject with requeue runs it again", async () => {
    h = harness();
    const strict = defineTask("tasks.strict", { acksLate: true });
    let attempts = 0;
    const w = h.worker().register(strict, (ctx) => {
      if (ctx.kwargs["mode"] === "drop") throw new Reject("bad input");
      attempts++;
      if (!ctx.delivery.redelivered) throw new Reject("try later", { requeue: true });
      return "second time";
    });
    await w.start();
    const dropped = await h.send("tasks.strict", { kwargs: { mode: "drop" } });
    await until("dead-lettered", () => h.transport.deadLetters.length === 1);
    expect(h.transport.deadLetters[0]!.reason).toContain("bad input");
    expect(h.transport.deadLetters[0]!.message.headers["id"]).toBe(dropped);
    expect(await h.backend.get(dropped)).toBeNull();

    const requeued = await h.send("tasks.strict");
    expect(await result(h, requeued)).toMatchObject({ status: "SUCCESS", result: "second time" });
    expect(attempts).toBe(2);
    expect(w.counters.rejected).toBe(2);
  });

  it("Reject in an early-ack task cannot undo the ack: it is logged, nothing is dead-lettered", async () => {
    h = harness();
    const w = h.worker().register("tasks.early_reject", () => {
      throw new Reject("too late");
    });
    await w.start();
    const id = await h.send("tasks.early_reject");
    await until("logged", () => h.logs.some((l) => l.taskId === id && /already acked/.test(l.msg)));
    expect(h.transport.deadLetters).toHaveLength(0);
    expect(h.transport.size("celery") + h.transport.inflightCount("celery")).toBe(0);
  });
});
