import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAmqpTransport } from "@celeriac/amqp";
import { markerSender, parseDump, probeUntil, runCeleryEventsInterop, startEventDump, waitFor } from "../../../test-support/celery-events-interop.js";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";

const CLI = fileURLToPath(new URL("../../../apps/cli/dist/bin.js", import.meta.url));
const TASKS = fileURLToPath(new URL("./fixtures/amqp-record-tasks.mjs", import.meta.url));

let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(() => shutdownSharedRabbit(), 60_000);

describe("Celery events on RabbitMQ (celeryev topic exchange)", () => {
  it("celery events --dump and Celery's State see the worker and every task event with Celery's fields", async () => {
    await runCeleryEventsInterop({ makeTransport: () => createAmqpTransport({ url: rabbit.url }), brokerUrl: rabbit.url });
  }, 90_000);

  it("celeriac worker -E is seen online, with heartbeats, and offline after SIGTERM", async () => {
    const dumper = startEventDump(rabbit.url);
    const probe = createAmqpTransport({ url: rabbit.url });
    const hostname = `cli-events-${randomUUID().slice(0, 8)}@localhost`;
    let out = "";
    let child: ChildProcess | null = null;
    const debug = () => `--- dump ---\n${dumper.output()}\n--- worker ---\n${out}`;
    try {
      await probe.connect();
      // The dumper must be listening before the worker starts, or worker-online goes unheard.
      await probeUntil(markerSender(probe), () => dumper.output().includes("celeriac probe"), debug);
      const worker = spawn(
        process.execPath,
        [CLI, "worker", "--broker", rabbit.url, "--tasks", TASKS, "-Q", `cli-events-${hostname}`, "-n", hostname, "-E", "-q"],
        {
          env: { ...process.env, CELERIAC_BROKER_URL: "", CELERIAC_RESULT_BACKEND: "" },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      child = worker;
      worker.stdout.on("data", (d: Buffer) => (out += d.toString()));
      worker.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => worker.once("exit", (code) => r(code)));
      const mine = () => parseDump(dumper.output()).filter((e) => e.hostname === hostname);
      await waitFor("worker-online and a heartbeat", () => mine().some((e) => e.kind === "heartbeat"), 20_000, debug);
      worker.kill("SIGTERM");
      expect(await exited).toBe(0);
      await waitFor("worker-offline", () => mine().some((e) => e.kind === "shutdown"), 10_000, debug);
      const kinds = mine().map((e) => e.kind);
      expect(kinds[0], debug()).toBe("started");
      expect(kinds.at(-1)).toBe("shutdown");
      expect(mine()[0]!.rest).toContain("sw_ident=celeriac");
    } finally {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await dumper.stop();
      await probe.close();
    }
  }, 90_000);
});
