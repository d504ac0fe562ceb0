import { createHash } from "node:crypto";

/**
 * The task id of one run: a name-based UUID (version 5 layout, SHA-1) of the beat name, the entry
 * and the due time, so every replica and every retry of the same run sends the same id and a
 * receiver can count runs exactly once.
 */
export function beatTaskId(beatName: string, entry: string, dueAtMs: number): string {
  const h = createHash("sha1")
    .update(`celeriac-beat\0${beatName}\0${entry}\0${new Date(dueAtMs).toISOString()}`)
    .digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
