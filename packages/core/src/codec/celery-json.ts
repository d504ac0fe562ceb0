// PLACEHOLDER: minimal celery-json codec so other modules can be built; the codec work replaces it.
import { createEnvelope, type Signature, type TaskEnvelope } from "../envelope.js";
import { CeleriacError } from "../errors.js";
import type { WireMessage } from "../wire.js";
import type { Codec } from "./codec.js";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

function sigToWire(s: Signature): Record<string, unknown> {
  return { task: s.task, args: s.args, kwargs: s.kwargs, options: s.options, subtask_type: s.subtaskType, immutable: s.immutable };
}
function sigFromWire(v: Record<string, unknown>): Signature {
  return {
    task: String(v["task"]),
    args: (v["args"] as unknown[]) ?? [],
    kwargs: (v["kwargs"] as Record<string, unknown>) ?? {},
    options: (v["options"] as Record<string, unknown>) ?? {},
    subtaskType: (v["subtask_type"] as string | null) ?? null,
    immutable: Boolean(v["immutable"]),
  };
}

export const celeryJsonCodec: Codec = {
  contentType: "application/json",
  encode(e: TaskEnvelope): WireMessage {
    const h = e.headers;
    const headers: Record<string, unknown> = {
      lang: h.lang, task: h.task, id: h.id, shadow: h.shadow, eta: h.eta, expires: h.expires,
      group: h.group, group_index: h.groupIndex, retries: h.retries, timelimit: h.timelimit,
      root_id: h.rootId, parent_id: h.parentId, argsrepr: h.argsrepr, kwargsrepr: h.kwargsrepr,
      origin: h.origin, ignore_result: h.ignoreResult, ...h.extra,
    };
    const body = [e.args, e.kwargs, {
      callbacks: e.embed.callbacks?.map(sigToWire) ?? null,
      errbacks: e.embed.errbacks?.map(sigToWire) ?? null,
      chain: e.embed.chain?.map(sigToWire) ?? null,
      chord: e.embed.chord ? sigToWire(e.embed.chord) : null,
    }];
    const p = e.properties;
    return {
      body: enc.encode(JSON.stringify(body)),
      contentType: "application/json",
      contentEncoding: "utf-8",
      headers,
      properties: {
        correlationId: p.correlationId, replyTo: p.replyTo, deliveryMode: p.deliveryMode,
        ...(p.priority !== null ? { priority: p.priority } : {}),
        ...(p.expiration !== null ? { expiration: p.expiration } : {}),
      },
    };
  },
  decode(m: WireMessage): TaskEnvelope {
    let body: unknown;
    try { body = JSON.parse(dec.decode(m.body)); } catch (err) {
      throw new CeleriacError("decode_failed", `body is not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(body) || body.length !== 3) throw new CeleriacError("decode_failed", "protocol v2 body must be [args, kwargs, embed]");
    const h = m.headers;
    const [args, kwargs, embed] = body as [unknown[], Record<string, unknown>, Record<string, unknown> | null];
    return createEnvelope({
      task: String(h["task"]), id: String(h["id"]), args, kwargs,
      headers: {
        eta: (h["eta"] as string | null) ?? null, expires: (h["expires"] as string | null) ?? null,
        retries: Number(h["retries"] ?? 0), timelimit: (h["timelimit"] as [number | null, number | null]) ?? [null, null],
        rootId: (h["root_id"] as string | null) ?? null, parentId: (h["parent_id"] as string | null) ?? null,
        ignoreResult: Boolean(h["ignore_result"]),
      },
      properties: {
        correlationId: m.properties.correlationId ?? String(h["id"]), replyTo: m.properties.replyTo ?? "",
        priority: m.properties.priority ?? null,
      },
      embed: {
        callbacks: (embed?.["callbacks"] as Record<string, unknown>[] | null)?.map(sigFromWire) ?? null,
        errbacks: (embed?.["errbacks"] as Record<string, unknown>[] | null)?.map(sigFromWire) ?? null,
        chain: (embed?.["chain"] as Record<string, unknown>[] | null)?.map(sigFromWire) ?? null,
        chord: embed?.["chord"] ? sigFromWire(embed["chord"] as Record<string, unknown>) : null,
      },
    });
  },
};
