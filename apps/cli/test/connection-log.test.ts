import { describe, expect, it } from "vitest";
import { CeleriacError } from "@celeriac/core";
import { ConnectionLifecycle } from "@celeriac/core/transport";
import { logConnectionEvents } from "../src/commands/worker.js";

// The lines `celeriac worker` writes for an outage, driven through core's real lifecycle loop
// (the broker restarts themselves are covered by the amqp and redis reliability tests).
describe("celeriac worker connection log", () => {
  it("logs an outage when it starts, each reconnect wait, and when it ends", async () => {
    const lifecycle = new ConnectionLifecycle("test", { initialDelayMs: 5, maxDelayMs: 10 });
    const lines: string[] = [];
    const stop = logConnectionEvents(
      lifecycle,
      (l) => lines.push(l),
      () => expect.fail("not failed"),
    );
    lifecycle.report({ type: "connected" });
    let calls = 0;
    const value = await lifecycle.retry(async () => {
      if (++calls < 3) throw new Error("ECONNREFUSED 127.0.0.1:1");
      return "up";
    });
    stop();
    expect(value).toBe("up");
    expect(lines[0]).toMatch(/^celeriac worker: broker connection lost: test: ECONNREFUSED/);
    expect(lines.filter((l) => /reconnecting to the broker in \d+ ms \(attempt \d\)/.test(l))).toHaveLength(2);
    expect(lines.at(-1)).toMatch(/^celeriac worker: broker connection restored after \d+\.\d s/);
    expect(lifecycle.state).toBe("connected");
  });

  it("logs a connection that gives up and hands it to onFailed, so the worker stops non-zero", async () => {
    const lifecycle = new ConnectionLifecycle("test");
    const lines: string[] = [];
    const failed: string[] = [];
    logConnectionEvents(
      lifecycle,
      (l) => lines.push(l),
      (e) => failed.push(e.error.code),
    );
    const refused = new CeleriacError("invalid_argument", "queue arguments differ");
    await expect(lifecycle.retry(() => Promise.reject(refused), { isFatal: (err) => err === refused })).rejects.toBe(refused);
    expect(lines).toEqual(["celeriac worker: broker connection failed, stopping: queue arguments differ\n"]);
    expect(failed).toEqual(["invalid_argument"]);
    expect(lifecycle.state).toBe("failed");
  });
});
