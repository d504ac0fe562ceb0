import { parseCeleryTime } from "@celeriac/core/transport";

/**
 * An `eta`/`expires` header as a Date, or null when absent. The codec has validated the header
 * already; a value it let through that still does not parse is treated as absent rather than
 * failing a task that can run anyway.
 */
export function parseCeleryDate(value: string | null | undefined): Date | null {
  if (value === null || value === undefined || value === "") return null;
  try {
    return parseCeleryTime(value);
  } catch {
    return null;
  }
}

// setTimeout overflows past 2^31-1 ms (about 24.8 days) and would fire at once.
const MAX_TIMER_MS = 2_147_483_647;

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const until = Date.now() + ms;
    let timer: ReturnType<typeof setTimeout>;
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const arm = () => {
      const left = until - Date.now();
      if (left <= 0) {
        signal?.removeEventListener("abort", onAbort);
        resolve();
        return;
      }
      timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    arm();
  });
}
