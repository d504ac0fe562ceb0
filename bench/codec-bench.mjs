#!/usr/bin/env node
// Envelope encode/decode rate of the celery-json and protobuf codecs over a typical task message.
// Reads the built package, so run `npm run build` (or `npm run build -w @celeriac/core`) first:
//   node bench/codec-bench.mjs [--ms 1500]
// Each cell is the best of 5 timed rounds after a warm-up, to dampen GC and JIT noise.

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dist = fileURLToPath(new URL("../packages/core/dist/index.js", import.meta.url));
if (!existsSync(dist)) {
  console.error("packages/core/dist is missing: run `npm run build -w @celeriac/core` first");
  process.exit(1);
}
const core = await import(dist);
const { createEnvelope, celeryJsonCodec, protobufCodec, toKombuEnvelope } = core;

const msArg = process.argv.indexOf("--ms");
const roundMs = msArg >= 0 ? Number(process.argv[msArg + 1]) / 5 : 300;

/** What Celery's `add.apply_async((2, 3), kwargs, countdown=10)` from a producer looks like. */
function typicalEnvelope() {
  const id = "9b5cbb2c-6c6b-4d7a-9f22-3f1d0b6c1a10";
  return createEnvelope({
    task: "proj.tasks.add",
    id,
    args: [2, 3],
    kwargs: { user: "alice", tags: ["a", "b"], debug: false },
    headers: {
      eta: "2026-12-01T04:00:10.123456+00:00",
      argsrepr: "(2, 3)",
      kwargsrepr: "{'user': 'alice', 'tags': ['a', 'b'], 'debug': False}",
      origin: "gen12345@worker-host",
    },
    properties: { replyTo: "5a1c3b5e-8a55-3d2b-9a4f-8f1c7d0e2b11" },
  });
}

/** Messages per second of `fn`, best of 5 rounds of about `roundMs` each. */
function rate(fn) {
  for (let i = 0; i < 20_000; i++) fn(); // warm-up: let the JIT settle
  let best = 0;
  for (let round = 0; round < 5; round++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(roundMs * 1e6));
    let now = start;
    while (now < deadline) {
      for (let i = 0; i < 1000; i++) fn();
      n += 1000;
      now = process.hrtime.bigint();
    }
    best = Math.max(best, n / (Number(now - start) / 1e9));
  }
  return best;
}

const envelope = typicalEnvelope();
const rows = [];
let sink = 0; // consumed so the work cannot be optimised away
for (const [name, codec] of [
  ["celery-json", celeryJsonCodec],
  ["protobuf", protobufCodec],
]) {
  const wire = codec.encode(envelope);
  const framed = JSON.stringify(toKombuEnvelope(wire, { routingKey: "celery", deliveryTag: "9b5cbb2c-6c6b-4d7a-9f22-3f1d0b6c1a11" }));
  rows.push({
    codec: name,
    body: wire.body.byteLength,
    bodyHeaders: wire.body.byteLength + Buffer.byteLength(JSON.stringify(wire.headers)),
    kombu: Buffer.byteLength(framed),
    encode: rate(() => {
      sink += codec.encode(envelope).body.byteLength;
    }),
    decode: rate(() => {
      sink += codec.decode(wire).args.length;
    }),
  });
}

const fmt = (n) => Math.round(n).toLocaleString("en-US");
const header = ["codec", "body B", "body+headers B", "kombu JSON B", "encode msg/s", "decode msg/s"];
const table = rows.map((r) => [r.codec, String(r.body), String(r.bodyHeaders), String(r.kombu), fmt(r.encode), fmt(r.decode)]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
const line = (cells) => "| " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ") + " |";
console.log(`node ${process.version}, ${process.platform}/${process.arch}; best of 5 rounds of ${roundMs} ms`);
console.log(line(header));
console.log("|" + widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|");
for (const row of table) console.log(line(row));
if (sink === 0) console.log("");
