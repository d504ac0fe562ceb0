import type { TaskEnvelope } from "@celeriac/core";
import { TaskRevokedError } from "./errors.js";
import { parseCeleryDate } from "./time.js";

// Celery's worker keeps revoked ids in a LimitedSet of 50,000 for 3 hours (celery/worker/state.py).
const REVOKES_MAX = 50_000;
const REVOKE_EXPIRES_MS = 10_800_000;

/** A message the worker holds, as far as revoking it is concerned. */
export interface RevocableJob {
  env: TaskEnvelope | null;
  running: {
    finished: boolean;
    abort(reason: unknown): void;
    /** Stop waiting for the handler and report the task REVOKED. */
    terminate(): void;
  } | null;
}

/**
 * Celery's revoke (celery/worker/control.py `revoke`, celery/worker/request.py `Request.revoked`):
 * the ids a revoke request named, remembered for a while, and the check each message gets before
 * it runs, which also covers a message whose `expires` has passed.
 */
export class Revocations {
  /** Revoked id -> epoch ms it was revoked; Map keeps insertion order, so the oldest go first. */
  private readonly revoked = new Map<string, number>();

  /**
   * Remembers `taskIds`; with `terminate`, aborts the signal of those of `jobs` that are running
   * and stops waiting for them. Returns the ids that were running and got terminated.
   */
  revoke(taskIds: readonly string[], terminate: boolean, jobs: Iterable<RevocableJob>): string[] {
    const now = Date.now();
    for (const id of taskIds) {
      this.revoked.delete(id);
      this.revoked.set(id, now);
    }
    while (this.revoked.size > REVOKES_MAX) this.revoked.delete(this.revoked.keys().next().value as string);
    const terminated: string[] = [];
    if (terminate) {
      const wanted = new Set(taskIds);
      for (const job of jobs) {
        if (job.env && wanted.has(job.env.headers.id) && job.running && !job.running.finished) {
          job.running.abort(new TaskRevokedError(job.env.headers.id));
          job.running.terminate();
          terminated.push(job.env.headers.id);
        }
      }
    }
    return terminated;
  }

  isRevoked(taskId: string): boolean {
    const at = this.revoked.get(taskId);
    if (at === undefined) return false;
    if (Date.now() - at > REVOKE_EXPIRES_MS) {
      this.revoked.delete(taskId);
      return false;
    }
    return true;
  }

  /** Why a message must not run: its `expires` passed, or its id was revoked; null to run it. */
  discardReason(env: TaskEnvelope): "expired" | "revoked" | null {
    if (isExpired(env)) return "expired";
    return this.isRevoked(env.headers.id) ? "revoked" : null;
  }
}

function isExpired(env: TaskEnvelope): boolean {
  const expires = parseCeleryDate(env.headers.expires);
  return expires !== null && Date.now() >= expires.getTime();
}
