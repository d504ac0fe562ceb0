import type { StopOptions } from "./worker.js";

interface Stoppable {
  stop(options?: StopOptions): Promise<void>;
}

/**
 * Celery's shutdowns (celery/apps/worker.py `install_worker_term_handler`, `_int_handler`,
 * `_term_hard_handler`): the first SIGTERM/SIGINT is a warm shutdown (finish the tasks in flight,
 * up to the grace time); a second one, or SIGQUIT, is a cold shutdown (hand running tasks back
 * at once). Returns a function that removes the handlers. While installed, the signals no longer
 * kill the process by default, so the process exits once the worker and anything else that keeps
 * the event loop alive are done.
 */
export function installSignalHandlers(
  worker: Stoppable,
  signals: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT"],
  coldSignals: readonly NodeJS.Signals[] = process.platform === "win32" ? [] : ["SIGQUIT"],
): () => void {
  let received = 0;
  const onSignal = () => {
    received++;
    void worker.stop(received > 1 ? { graceMs: 0 } : {});
  };
  const onCold = () => void worker.stop({ graceMs: 0 });
  for (const s of signals) process.on(s, onSignal);
  for (const s of coldSignals) process.on(s, onCold);
  return () => {
    for (const s of signals) process.off(s, onSignal);
    for (const s of coldSignals) process.off(s, onCold);
  };
}
