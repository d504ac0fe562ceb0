import { CeleriacError, type Signature, type TaskEnvelope } from "@celeriac/core";
import { planCanvas, toWireSignature, type CanvasPlan, type WireSignature } from "@celeriac/core/transport";

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
  /** Where a signature without `options.queue` and without a route goes: the worker's first queue. */
  defaultQueue: string;
  /** The worker's `routes` (Celery's task_routes): the queue for a task name, or null. */
  route?: (task: string) => string | null;
  now: Date;
}

export interface FollowUpPlan {
  messages: FollowUp[];
  /** `set_chord_size` calls to make before publishing (a chord sent as a step or callback). */
  chordSizes: CanvasPlan["chordSizes"];
}

/**
 * Builds the messages for a link, link_error, chain step or chord body, the way Celery's
 * `sig.apply_async((value,), chain=chain, parent_id=..., root_id=...)` would from the signature
 * dict (celery/app/trace.py, celery/backends/base.py): `value` is prepended to the args unless
 * the signature is immutable. Plain signatures, chains, groups and chords are understood; a
 * shape that is not supported returns an error string instead, because publishing it wrong
 * would be worse than not publishing it.
 */
export function followUps(sig: Signature, value: unknown[], ctx: FollowUpContext, chain: Signature[] | null = null): FollowUpPlan | string {
  try {
    const plan = planCanvas(
      sig,
      value,
      { parentId: ctx.parentId, rootId: ctx.rootId, now: ctx.now },
      { chain: chain ? chain.map(toWireSignature) : undefined },
    );
    return {
      messages: plan.messages.map((m) => ({
        queue: m.queue ?? ctx.route?.(m.envelope.headers.task) ?? ctx.defaultQueue,
        envelope: m.envelope,
        delayMs: m.delayMs,
      })),
      chordSizes: plan.chordSizes,
    };
  } catch (err) {
    if (err instanceof CeleriacError) return err.message;
    throw err;
  }
}

/**
 * celery/app/trace.py: with several callbacks, groups are applied one by one and the plain
 * signatures together as one group; a single callback is applied alone.
 */
export function callbackSignatures(callbacks: readonly Signature[]): Signature[] {
  if (callbacks.length <= 1) return [...callbacks];
  const groups = callbacks.filter((c) => c.subtaskType === "group");
  const plain = callbacks.filter((c) => c.subtaskType !== "group");
  return plain.length > 0 ? [...groups, asGroup(plain)] : groups;
}

/**
 * celery/backends/base.py `_call_task_errbacks`: errbacks that take only the task id are applied
 * together as `group(errbacks).apply_async((task_id,))`.
 */
export function errbackGroup(errbacks: readonly Signature[]): Signature {
  return asGroup(errbacks);
}

function asGroup(members: readonly Signature[]): Signature {
  return { task: "celery.group", args: [], kwargs: { tasks: members.map(toWireSignature) }, options: {}, subtaskType: "group", immutable: false };
}

export type { WireSignature };
