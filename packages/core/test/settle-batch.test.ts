import { describe, expect, it } from "vitest";
import { SettleBatch } from "../src/settle-batch.js";

describe("SettleBatch", () => {
  it("hands every item added in one turn to a single flush, in order, and resolves them with it", async () => {
    const flushes: number[][] = [];
    const batch = new SettleBatch<number>((items) => void flushes.push(items));
    const done = [1, 2, 3].map((n) => batch.add(n));
    expect(flushes).toEqual([]);
    expect(batch.pending).toBe(3);
    await Promise.all(done);
    expect(flushes).toEqual([[1, 2, 3]]);
    await batch.add(4);
    expect(flushes).toEqual([[1, 2, 3], [4]]);
  });

  it("resolves only when the flush's own promise does, and rejects every item of a failed flush", async () => {
    let release!: () => void;
    const batch = new SettleBatch<string>((items) => {
      if (items.includes("bad")) throw new Error("broker gone");
      return new Promise<void>((r) => (release = r));
    });
    let settled = false;
    const ok = batch.add("a").then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    release();
    await ok;
    expect(settled).toBe(true);
    const failed = [batch.add("x"), batch.add("bad")];
    for (const p of failed) await expect(p).rejects.toThrow("broker gone");
  });

  it("flush() writes what is queued at once, so a later settle reaches the broker after it", async () => {
    const log: string[] = [];
    const batch = new SettleBatch<string>((items) => void log.push(`ack ${items.join(",")}`));
    const p = batch.add("1");
    batch.flush();
    log.push("nack 2");
    await p;
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(["ack 1", "nack 2"]);
    expect(batch.pending).toBe(0);
  });
});
