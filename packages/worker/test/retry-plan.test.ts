import { createEnvelope, Retry, type TaskEnvelope } from "@celeriac/core";
import { describe, expect, it } from "vitest";
import { planRetry, retryDelayMs } from "../src/retry.js";

// The rules of celery/app/task.py Task.retry, without a worker or a broker.
const NOW = Date.UTC(2026, 0, 2, 3, 4, 5, 600);

function envelope(retries: number): TaskEnvelope {
  return createEnvelope({ task: "tasks.flaky", id: "id-1", args: [1, "a"], kwargs: { k: true }, headers: { retries, eta: null } });
}

describe("planRetry", () => {
  it("re-sends with retries + 1 and the ETA countdown from now, keeping everything else", () => {
    const env = envelope(0);
    const plan = planRetry(env, new Retry({ countdownMs: 1500 }), {}, NOW);
    expect(plan.kind).toBe("retry");
    if (plan.kind !== "retry") return;
    expect(plan.retries).toBe(1);
    expect(plan.delayMs).toBe(1500);
    expect(plan.envelope.headers.retries).toBe(1);
    expect(plan.envelope.headers.eta).toBe("2026-01-02T03:04:07.100000+00:00");
    expect(plan.envelope.headers.id).toBe("id-1");
    expect(plan.envelope.args).toEqual([1, "a"]);
    expect(plan.envelope.kwargs).toEqual({ k: true });
    // The message that is being retried is not changed.
    expect(env.headers.retries).toBe(0);
    expect(env.headers.eta).toBeNull();
    // Without an exc, Celery stores Retry('Retry in Ns') as the RETRY result.
    expect(plan.exception).toEqual({ exc_type: "Retry", exc_message: ["Retry in 1.5s"], exc_module: "celery.exceptions" });
  });

  it("without a countdown uses the task's backoff, else its default delay, else 180 s", () => {
    const backoff = planRetry(envelope(2), new Retry(), { retryBackoffMs: 1000, retryJitter: false, maxRetries: 5 }, NOW);
    expect(backoff.kind === "retry" && backoff.delayMs).toBe(4000);
    const fixed = planRetry(envelope(0), new Retry(), { defaultRetryDelayMs: 42 }, NOW);
    expect(fixed.kind === "retry" && fixed.delayMs).toBe(42);
    const celeryDefault = planRetry(envelope(0), new Retry(), {}, NOW);
    expect(celeryDefault.kind === "retry" && celeryDefault.delayMs).toBe(180_000);
  });

  it("jitters the backoff with the random source it is given", () => {
    const plan = planRetry(envelope(1), new Retry(), { retryBackoffMs: 1000 }, NOW, () => 0.5);
    // 1000 * 2^1 = 2000; full jitter picks floor(0.5 * 2001).
    expect(plan.kind === "retry" && plan.delayMs).toBe(1000);
  });

  it("stops at max_retries: the task's, overridden by the retry's own, default 3", () => {
    expect(planRetry(envelope(2), new Retry(), {}, NOW).kind).toBe("retry");
    expect(planRetry(envelope(3), new Retry(), {}, NOW).kind).toBe("fail");
    expect(planRetry(envelope(1), new Retry(), { maxRetries: 1 }, NOW).kind).toBe("fail");
    expect(planRetry(envelope(1), new Retry({ maxRetries: 5 }), { maxRetries: 1 }, NOW).kind).toBe("retry");
    expect(planRetry(envelope(0), new Retry({ maxRetries: 0 }), { maxRetries: 10 }, NOW).kind).toBe("fail");
  });

  it("out of retries without an exc, fails with MaxRetriesExceededError naming the call", () => {
    const retry = new Retry();
    const plan = planRetry(envelope(3), retry, {}, NOW);
    expect(plan.kind).toBe("fail");
    if (plan.kind !== "fail") return;
    expect(plan.error).toBe(retry);
    expect(plan.exception).toEqual({
      exc_type: "MaxRetriesExceededError",
      exc_message: [`Can't retry tasks.flaky[id-1] args:[1,"a"] kwargs:{"k":true}`],
      exc_module: "celery.exceptions",
    });
  });

  it("out of retries with an exc, fails with that exc, as Celery re-raises it", () => {
    const cause = new TypeError("connection refused");
    const plan = planRetry(envelope(3), new Retry({ cause }), {}, NOW);
    expect(plan.kind).toBe("fail");
    if (plan.kind !== "fail") return;
    expect(plan.error).toBe(cause);
    expect(plan.exception).toEqual({ exc_type: "TypeError", exc_message: ["connection refused"], exc_module: null });
    expect(plan.traceback).toBe(cause.stack);
  });

  it("while retries remain, stores and reports the exc as the RETRY result", () => {
    const cause = new RangeError("try later");
    const plan = planRetry(envelope(0), new Retry({ cause, countdownMs: 10 }), {}, NOW);
    expect(plan.kind).toBe("retry");
    if (plan.kind !== "retry") return;
    expect(plan.exception).toEqual({ exc_type: "RangeError", exc_message: ["try later"], exc_module: null });
    expect(plan.traceback).toBe(cause.stack);
  });

  it("an exc that is itself a Retry is not re-raised", () => {
    const plan = planRetry(envelope(3), new Retry({ cause: new Retry() }), {}, NOW);
    expect(plan.kind === "fail" && plan.exception.exc_type).toBe("MaxRetriesExceededError");
  });

  it("a negative countdown runs at once", () => {
    expect(retryDelayMs({}, -5, 0)).toBe(0);
    const plan = planRetry(envelope(0), new Retry({ countdownMs: -5 }), {}, NOW);
    expect(plan.kind === "retry" && plan.envelope.headers.eta).toBe("2026-01-02T03:04:05.600000+00:00");
  });
});
