import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedRabbit, shutdownSharedRabbit, type RabbitNode } from "../../../test-support/rabbitmq.js";
import { celeriac, startCeleriacWorker, TS_TASKS } from "./cli-helpers.js";

// Passwords written every way a user may write them, against a broker that refuses them (and
// one that accepts them): no fragment of a password reaches stdout or stderr.
let rabbit: RabbitNode;
beforeAll(async () => {
  rabbit = await sharedRabbit();
}, 120_000);
afterAll(async () => {
  await shutdownSharedRabbit();
}, 60_000);

const SECRET_FRAGMENTS = ["s3cr", "t%2Fx", "t/x", "@t@", "hunter"];

function expectNoSecret(output: string): void {
  for (const f of SECRET_FRAGMENTS) expect(output, `output shows ${JSON.stringify(f)}:\n${output}`).not.toContain(f);
}

describe("passwords in broker URLs never reach the output", () => {
  // (`;`-separated failover lists are masked by core's maskUrl, tested in core; the AMQP
  // transport reads them once the failover work lands.)
  it("a worker refused by RabbitMQ (raw @, percent-encoded) exits non-zero without showing the password", async () => {
    const host = `127.0.0.1:${rabbit.port}`;
    for (const url of [`amqp://guest:s3cr@t@${host}//`, `amqp://guest:s3cr%40t%2Fx@${host}//`, `amqp://alice:s3cr@t@${host}/vhost`]) {
      const r = await celeriac(["worker", "--broker", url, "--tasks", TS_TASKS, "-Q", "secrets"], { timeoutMs: 30_000 });
      expect(r.code, `${url}\n${r.stderr}`).not.toBe(0);
      expect(r.code).not.toBeNull();
      expect(r.stderr).toMatch(/celeriac: /);
      expectNoSecret(r.stdout + r.stderr);
    }
  }, 120_000);

  it("a producer refused by an SQS endpoint shows neither the secret key nor a raw @ fragment", async () => {
    const r = await celeriac(["call", "x.y", "--broker", "sqs://AKIA:s3cr@t@127.0.0.1:1?region=us-east-1"], { timeoutMs: 60_000 });
    expect(r.code).not.toBe(0);
    expectNoSecret(r.stdout + r.stderr);
  }, 90_000);

  it("a worker that connects logs its broker with the password masked (text and JSON logs)", async () => {
    for (const format of ["text", "json"]) {
      const w = await startCeleriacWorker(["--broker", rabbit.url, "--tasks", TS_TASKS, "-Q", `secrets-${format}`, "--log-format", format]);
      const out = w.output();
      await w.stop();
      expect(out).toContain("guest:**@");
      expect(out).not.toMatch(/guest:guest@/);
    }
  }, 60_000);
});
