import { defineTask, Retry } from "@celeriac/core";
import type { Worker } from "@celeriac/worker";

/**
 * The tasks `celeriac demo` runs. Definitions (names and types) are what a producer imports; the
 * `register` function below is what a worker loads with `--tasks`.
 */
export const add = defineTask<[number, number], number>("demo.add");
export const multiply = defineTask<[number, number], number>("demo.multiply");
export const flaky = defineTask<[string], string>("demo.flaky", { maxRetries: 3, retryBackoffMs: 100, retryJitter: false });
export const divide = defineTask<[number, number], number>("demo.divide");
export const wordCount = defineTask<[], Record<string, number>, { text: string }>("demo.word_count");

export default function register(worker: Worker): void {
  worker.register(add, (_ctx, a, b) => a + b);
  worker.register(multiply, async (_ctx, a, b) => {
    await new Promise((r) => setTimeout(r, 20));
    return a * b;
  });
  worker.register(flaky, (ctx, name) => {
    // Fails on its first two runs to show retries with backoff.
    if (ctx.retries < 2) throw new Retry({ message: `${name} not ready yet` });
    return `${name} succeeded after ${ctx.retries} retries`;
  });
  worker.register(divide, (_ctx, a, b) => {
    if (b === 0) throw new RangeError("division by zero");
    return a / b;
  });
  worker.register(wordCount, (ctx) => {
    const counts: Record<string, number> = {};
    for (const word of ctx.kwargs.text.toLowerCase().split(/\W+/).filter(Boolean)) counts[word] = (counts[word] ?? 0) + 1;
    return counts;
  });
}
