import { randomUUID } from "node:crypto";
import { createEnvelope, toCeleryIso, type Signature, type TaskEnvelope } from "@celeriac/core";

/** One follow-up message to publish: where, what, and how long the broker should hide it. */
export interface FollowUp {
  queue: string;
  envelope: TaskEnvelope;
  delayMs: number;
}

export interface FollowUpContext {
  /** The finished task: the follow-up's parent. */
  parentId: string;
  rootId: string;
  /** Where a signature without `options.queue` goes: the worker's first queue. */
  defaultQueue: string;
  now: Date;
}

/**
 * Builds the messages for a link, link_error or chain step, the way Celery's `apply_async` would
 * from the signature dict: `value` is prepended to the args unless the signature is immutable.
 * Plain signatures, chains and groups are understood; a chord (or anything else) as a callback
 * returns an error string instead, because publishing it wrong would be worse than not
 * publishing it.
 */
export function followUps(sig: Signature, value: unknown[], ctx: FollowUpContext, chain: Signature[] | null = null): FollowUp[] | string {
  if (sig.subtaskType === "chain") {
    const raw = sig.kwargs["tasks"];
    if (!Array.isArray(raw) || raw.length === 0) return `chain signature has no tasks`;
    const steps = raw.map((t) => signatureFromWire(t));
    if (steps.some((s) => s === null)) return `chain signature holds something that is not a signature`;
    const [first, ...rest] = steps as Signature[];
    // Celery embeds the remaining steps in reverse so each worker pops the next one off the end.
    const remaining = [...rest].reverse().concat(chain ?? []);
    return followUps(first!, sig.immutable ? [] : value, ctx, remaining.length > 0 ? remaining : null);
  }
  if (sig.subtaskType === "group") {
    const raw = sig.kwargs["tasks"];
    if (!Array.isArray(raw)) return `group signature has no tasks`;
    const members = raw.map((t) => signatureFromWire(t));
    if (members.some((s) => s === null)) return `group signature holds something that is not a signature`;
    // Each member gets the value, the group's id and its index, as group.apply_async((value,)) does.
    const groupId = stringOption(sig.options["group_id"]) ?? stringOption(sig.options["task_id"]) ?? randomUUID();
    const out: FollowUp[] = [];
    for (const [index, member] of (members as Signature[]).entries()) {
      const made = followUps(
        { ...member, options: { ...member.options, group_id: groupId, group_index: index } },
        sig.immutable ? [] : value,
        ctx,
        chain,
      );
      if (typeof made === "string") return made;
      out.push(...made);
    }
    return out;
  }
  if (sig.subtaskType !== null) return `${sig.subtaskType} signatures as callbacks are not supported by this worker`;

  const o = sig.options;
  const id = typeof o["task_id"] === "string" && o["task_id"] !== "" ? o["task_id"] : randomUUID();
  const args = sig.immutable ? [...sig.args] : [...value, ...sig.args];

  let delayMs = 0;
  let eta: string | null = null;
  if (typeof o["countdown"] === "number" && o["countdown"] > 0) {
    delayMs = o["countdown"] * 1000;
    eta = toCeleryIso(new Date(ctx.now.getTime() + delayMs));
  } else if (typeof o["eta"] === "string") {
    eta = o["eta"];
    const at = Date.parse(eta);
    if (!Number.isNaN(at)) delayMs = Math.max(0, at - ctx.now.getTime());
  }
  let expires: string | null = null;
  if (typeof o["expires"] === "number") expires = toCeleryIso(new Date(ctx.now.getTime() + o["expires"] * 1000));
  else if (typeof o["expires"] === "string") expires = o["expires"];

  const envelope = createEnvelope({
    task: sig.task,
    id,
    args,
    kwargs: { ...sig.kwargs },
    headers: {
      eta,
      expires,
      rootId: ctx.rootId,
      parentId: ctx.parentId,
      group: typeof o["group_id"] === "string" ? o["group_id"] : null,
      groupIndex: typeof o["group_index"] === "number" ? o["group_index"] : null,
      timelimit: [numberOrNull(o["time_limit"]), numberOrNull(o["soft_time_limit"])],
      ignoreResult: o["ignore_result"] === true,
    },
    properties: {
      priority: typeof o["priority"] === "number" ? o["priority"] : null,
    },
    embed: {
      callbacks: signatureList(o["link"]),
      errbacks: signatureList(o["link_error"]),
      chain,
    },
  });
  return [{ queue: queueName(o["queue"]) ?? ctx.defaultQueue, envelope, delayMs }];
}

function stringOption(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

function numberOrNull(v: unknown): number | null {
  return typeof v === "number" ? v : null;
}

function queueName(q: unknown): string | null {
  if (typeof q === "string" && q !== "") return q;
  // kombu serializes a Queue object as a dict carrying its name.
  if (q !== null && typeof q === "object" && typeof (q as { name?: unknown }).name === "string") return (q as { name: string }).name;
  return null;
}

function signatureList(v: unknown): Signature[] | null {
  if (v === null || v === undefined) return null;
  const list = Array.isArray(v) ? v : [v];
  const sigs = list.map((s) => signatureFromWire(s)).filter((s): s is Signature => s !== null);
  return sigs.length > 0 ? sigs : null;
}

/** A signature dict as found inside options (link, chain tasks): still in Celery's wire names. */
export function signatureFromWire(v: unknown): Signature | null {
  if (v === null || typeof v !== "object") return null;
  const d = v as Record<string, unknown>;
  if (typeof d["task"] !== "string") return null;
  return {
    task: d["task"],
    args: Array.isArray(d["args"]) ? [...(d["args"] as unknown[])] : [],
    kwargs: isRecord(d["kwargs"]) ? { ...d["kwargs"] } : {},
    options: isRecord(d["options"]) ? { ...d["options"] } : {},
    subtaskType: typeof d["subtask_type"] === "string" ? d["subtask_type"] : null,
    immutable: d["immutable"] === true,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
