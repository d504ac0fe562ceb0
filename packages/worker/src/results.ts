import type { ResultMeta, TaskEnvelope, TaskState } from "@celeriac/core";
import { toCeleryNaiveUtc } from "@celeriac/core/transport";

/** The result meta Celery's backends store for a task (celery/backends/base.py `_get_result_meta`). */
export function resultMeta(env: TaskEnvelope, status: TaskState, result: unknown, traceback: string | null): ResultMeta {
  const h = env.headers;
  const ready = status === "SUCCESS" || status === "FAILURE" || status === "REVOKED";
  return {
    status,
    result,
    traceback,
    children: [],
    date_done: ready ? toCeleryNaiveUtc(new Date()) : null,
    task_id: h.id,
    ...(h.group ? { group_id: h.group } : {}),
    ...(h.parentId ? { parent_id: h.parentId } : {}),
  };
}
