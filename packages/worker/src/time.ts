/**
 * Celery dates. Producers write ISO 8601 with an offset; older or naive producers write none, and
 * Celery reads a naive time as UTC (its default timezone), whereas JS would read it as local time.
 */
export function parseCeleryDate(value: string | null | undefined): Date | null {
  if (value === null || value === undefined || value === "") return null;
  const hasZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(value);
  const ms = Date.parse(hasZone || !value.includes("T") ? value : value + "Z");
  return Number.isNaN(ms) ? null : new Date(ms);
}

/**
 * `date_done` as Celery writes it: `datetime.utcnow().isoformat()`, a naive UTC time with
 * microseconds and no zone designator. JS has milliseconds, so the last three digits are zeros.
 */
export function formatDateDone(date: Date = new Date()): string {
  return date.toISOString().replace("Z", "000");
}

/** An `eta` header: UTC with an explicit +00:00 offset, as Celery's producer writes it. */
export function formatEta(date: Date): string {
  return date.toISOString().replace("Z", "000+00:00");
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
