import type { Signature } from "./envelope.js";
import type { TaskDefinition } from "./task.js";

/**
 * A task call to run later, as Celery's `task.s(...)`/`task.si(...)`: used for `link`,
 * `linkError` and chains. `immutable` keeps the parent's result out of the args.
 */
export function signature<Args extends unknown[], Result, Kwargs extends Record<string, unknown>>(
  task: TaskDefinition<Args, Result, Kwargs> | string,
  init: { args?: unknown[]; kwargs?: Partial<Kwargs>; options?: Record<string, unknown>; immutable?: boolean } = {},
): Signature {
  return {
    task: typeof task === "string" ? task : task.name,
    args: init.args ?? [],
    kwargs: (init.kwargs as Record<string, unknown> | undefined) ?? {},
    options: init.options ?? {},
    subtaskType: null,
    immutable: init.immutable ?? false,
  };
}
