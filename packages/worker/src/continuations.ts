import {
  celeryJsonCodec,
  currentTraceContext,
  type ExceptionInfo,
  type ResultBackend,
  type ResultMeta,
  type Signature,
  type TaskEnvelope,
  type TaskState,
  type Transport,
} from "@celeriac/core";
import { chordOutcome, fromWireSignature, toCeleryNaiveUtc, traceHeaders, type ChordPart } from "@celeriac/core/transport";
import { callbackSignatures, errbackGroup, followUps } from "./canvas.js";
import { celeryException, describe } from "./errors.js";
import type { LogFn } from "./logger.js";
import { resultMeta } from "./results.js";

/** What continuations need from the worker: where to publish, where results go, how to log. */
export interface ContinuationsDeps {
  transport: Transport;
  resultBackend: ResultBackend | null;
  /** Where a follow-up without a queue or a route goes: the worker's first queue. */
  defaultQueue: string;
  route: (task: string) => string | null;
  log: LogFn;
  /** Stores a result meta, logging (not throwing) when the backend fails. */
  store(meta: ResultMeta): Promise<void>;
}

/**
 * Celery's workflow rules for what follows a task (celery/app/trace.py, celery/backends/base.py):
 * callbacks and the next chain step after a success, errbacks and failed chain steps after a
 * failure, and the chord counting that sends a chord's body once its last header task reports.
 */
export class Continuations {
  constructor(private readonly deps: ContinuationsDeps) {}

  /**
   * celery/app/trace.py: callbacks, then the next chain step, each with the result prepended.
   * Throws when one cannot be published: the workflow cannot continue, and Celery reports that
   * as a failure of the task.
   */
  async afterSuccess(env: TaskEnvelope, result: unknown): Promise<void> {
    for (const sig of callbackSignatures(env.embed.callbacks ?? [])) await this.publishSignature(env.headers, sig, [result], null);
    const chain = env.embed.chain;
    if (chain && chain.length > 0) {
      const rest = chain.slice(0, -1);
      await this.publishSignature(env.headers, chain[chain.length - 1]!, [result], rest.length > 0 ? rest : null);
    }
  }

  /**
   * After the task's own FAILURE is stored. Like Celery, fail the chain steps that already have
   * ids (when results are stored), so a client waiting on the chain's last result does not wait
   * forever; count the failure for the task's chord and for any chain step that is a chord member
   * (mark_as_failure), so the chord does not stall; then call the errbacks.
   */
  async afterFailure(env: TaskEnvelope, info: ExceptionInfo, traceback: string | null, storeChainSteps: boolean): Promise<void> {
    const h = env.headers;
    const steps = env.embed.chain ?? [];
    if (storeChainSteps) {
      for (const step of steps) {
        const stepId = step.options["task_id"];
        if (typeof stepId === "string") await this.deps.store({ ...resultMeta(env, "FAILURE", info, traceback), task_id: stepId, parent_id: h.id });
      }
    }
    await this.partReturned(env, "FAILURE", info);
    for (const step of steps) {
      if (step.options["chord"]) await this.chordPartReturn(chordRequestOfStep(step, h), "FAILURE", info);
    }
    await this.publishErrbacksOf(h, env.embed.errbacks ?? [], h.id);
  }

  /**
   * celery/backends/base.py mark_as_done / mark_as_failure / mark_as_revoked ->
   * `on_chord_part_return`: a chord header task reports its outcome (whether or not its result
   * is stored). The one call that completes the chord, on whichever worker, gets the parts.
   */
  async partReturned(env: TaskEnvelope, state: TaskState, result: unknown): Promise<void> {
    await this.chordPartReturn(chordRequest(env), state, result);
  }

  /**
   * Errbacks are called the old way, as tasks with the failed task's id as their only argument,
   * applied together as one group (celery/backends/base.py `_call_task_errbacks`: what Celery
   * does for any errback that does not take (request, exc, traceback)).
   */
  private async publishErrbacksOf(from: FollowUpSource, errbacks: readonly Signature[], failedId: string): Promise<void> {
    if (errbacks.length === 0) return;
    try {
      await this.publishSignature(from, errbackGroup(errbacks), [failedId], null);
    } catch (err) {
      this.deps.log("error", `could not publish the errbacks of ${from.task}[${from.id}]`, { taskId: from.id, error: describe(err) });
    }
  }

  /** Publishes a follow-up; false when its shape is not supported (logged, nothing published). */
  private async publishSignature(from: FollowUpSource, sig: Signature, value: unknown[], chain: Signature[] | null): Promise<boolean> {
    const { transport, resultBackend: backend, log } = this.deps;
    const made = followUps(
      sig,
      value,
      { parentId: from.id, rootId: from.rootId ?? from.id, defaultQueue: this.deps.defaultQueue, route: this.deps.route, now: new Date() },
      chain,
    );
    if (typeof made === "string") {
      log("error", `skipping callback ${sig.task} of ${from.task}[${from.id}]: ${made}`, { taskId: from.id, task: from.task });
      return false;
    }
    if (made.chordSizes.length > 0 && !backend?.setChordSize) {
      log("error", `skipping callback ${sig.task} of ${from.task}[${from.id}]: it starts a chord and the result backend cannot count chord parts`, {
        taskId: from.id,
        task: from.task,
      });
      return false;
    }
    // Celery sets the chord size before it publishes the header (group._apply_tasks).
    for (const c of made.chordSizes) await backend!.setChordSize!(c.groupId, c.size);
    const trace = currentTraceContext();
    for (const f of made.messages) {
      if (trace) f.envelope.headers.extra = { ...f.envelope.headers.extra, ...traceHeaders(trace) };
      const delayed = transport.capabilities.delayedDelivery && f.delayMs > 0;
      await transport.publish(f.queue, celeryJsonCodec.encode(f.envelope), delayed ? { delayMs: f.delayMs } : {});
    }
    return true;
  }

  private async chordPartReturn(req: ChordRequest | null, state: TaskState, result: unknown): Promise<void> {
    const backend = this.deps.resultBackend;
    if (!req || !backend?.onChordPartReturn) return;
    let parts: ChordPart[] | null;
    try {
      parts = await backend.onChordPartReturn({ groupId: req.groupId, taskId: req.taskId, groupIndex: req.groupIndex, state, result });
    } catch (err) {
      this.deps.log("error", `could not count chord part ${req.taskId} of chord ${req.groupId}`, { taskId: req.taskId, error: describe(err) });
      return;
    }
    if (parts) await this.completeChord(req, parts);
  }

  /**
   * celery/backends/redis.py on_chord_part_return, once complete: the body is sent with the
   * header's results in order; a failed header task (or a body that cannot be sent) becomes the
   * body's FAILURE with a ChordError and its errbacks are called (base.py chord_error_from_stack).
   */
  private async completeChord(req: ChordRequest, parts: ChordPart[]): Promise<void> {
    const { log } = this.deps;
    const body = req.chord;
    const outcome = chordOutcome(parts);
    const from: FollowUpSource = { id: req.taskId, rootId: req.rootId, task: body.task };
    let error: ExceptionInfo;
    if ("values" in outcome) {
      try {
        if (await this.publishSignature(from, body, [outcome.values], null)) {
          log("info", `Chord ${req.groupId} complete; body ${body.task} sent`, { taskId: req.taskId, groupId: req.groupId });
          return;
        }
        error = celeryException("ChordError", [`Callback error: the chord body ${body.task} cannot be sent by this worker`]);
      } catch (err) {
        error = celeryException("ChordError", [`Callback error: ${describe(err)}`]);
      }
    } else {
      error = outcome.error;
    }
    const bodyId = typeof body.options["task_id"] === "string" ? body.options["task_id"] : null;
    log("error", `Chord ${req.groupId} raised: ${error.exc_type}(${error.exc_message.map((m) => JSON.stringify(m)).join(", ")})`, {
      taskId: bodyId,
      groupId: req.groupId,
    });
    if (!bodyId) return;
    const errbacks = (Array.isArray(body.options["link_error"]) ? body.options["link_error"] : [])
      .map((e) => fromWireSignature(e))
      .filter((e): e is Signature => e !== null);
    await this.publishErrbacksOf({ id: bodyId, rootId: bodyId, task: body.task }, errbacks, bodyId);
    await this.deps.store({ status: "FAILURE", result: error, traceback: null, children: [], date_done: toCeleryNaiveUtc(new Date()), task_id: bodyId });
  }
}

/** Who sends a follow-up: its parent. */
interface FollowUpSource {
  id: string;
  rootId: string | null;
  task: string;
}

/** The parts of a task request `on_chord_part_return` reads. */
interface ChordRequest {
  taskId: string;
  groupId: string;
  groupIndex: number | null;
  chord: Signature;
  rootId: string | null;
}

function chordRequest(env: TaskEnvelope): ChordRequest | null {
  const h = env.headers;
  if (!env.embed.chord || !h.group) return null;
  return { taskId: h.id, groupId: h.group, groupIndex: h.groupIndex, chord: env.embed.chord, rootId: h.rootId };
}

/** A chain step that is a chord member, as Celery rebuilds its request from the step's options. */
function chordRequestOfStep(step: Signature, parent: { rootId: string | null }): ChordRequest | null {
  const o = step.options;
  const chord = fromWireSignature(o["chord"]);
  if (!chord || typeof o["task_id"] !== "string" || typeof o["group_id"] !== "string") return null;
  return {
    taskId: o["task_id"],
    groupId: o["group_id"],
    groupIndex: typeof o["group_index"] === "number" ? o["group_index"] : null,
    chord,
    rootId: parent.rootId,
  };
}
