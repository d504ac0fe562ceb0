export interface SqsEmulator {
  /** The adapter's URL: give this to the SDK (`endpoint`) and kombu (`sqs://x:y@127.0.0.1:port`). */
  endpoint: string;
  port: number;
  /** The bare emulator, without the adapter (for the adapter's own tests). */
  upstream: string;
  /** Restarts the endpoint, losing every queue and message; connections are dropped for `downMs` (default 0). */
  restart(options?: { downMs?: number }): Promise<void>;
  close(): Promise<void>;
}
/** Starts local-aws-sqs plus the adapter on free loopback ports. */
export function startSqsEmulator(): Promise<SqsEmulator>;
