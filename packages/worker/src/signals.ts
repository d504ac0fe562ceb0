import type { StopOptions } from "./worker.js";

interface Stoppable {
  stop(options?: StopOptions): Promise<void>;
}

/**
 * Graceful shutdown on SIGTERM/SIGINT, forced on the second signal (Celery's warm then cold
 * shutdown). Returns a function that removes the handlers. While installed, the signals no longer
 * kill the process by default, so the process exits once the worker and anything else that keeps
 * the event loop alive are done.
 */
export function installSignalHandlers(worker: Stoppable, signals: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT"]): () => void {
  let received = 0;
  const onSignal = () => {
    received++;
    void worker.stop(received > 1 ? { graceMs: 0 } : {});
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.off(s, onSignal);
  };
}
