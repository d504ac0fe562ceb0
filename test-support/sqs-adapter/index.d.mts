import type { RequestListener } from "node:http";

export interface SqsAdapterOptions {
  /** Where the emulator listens, e.g. `http://127.0.0.1:40123`. */
  upstream: string;
  /** The adapter's own base URL, which clients use; QueueUrls built from paths start with it. */
  publicBaseUrl: string;
}

export interface RewrittenRequest {
  body: Buffer;
  /** Set for a ReceiveMessage long poll for several messages: ask `instant` first, then `single`. */
  receive?: { instant: Buffer; single: Buffer };
}

export function rewriteSqsRequest(
  path: string,
  contentType: string | undefined,
  target: string | undefined,
  body: Buffer,
  publicBaseUrl: string,
): RewrittenRequest;
export function hasMessages(contentType: string | undefined, body: Buffer): boolean;
export function createSqsAdapter(options: SqsAdapterOptions): { handler: RequestListener; close(): void };
export function messageIdOfReceiptHandle(handle: string): string | null;
export function visibilityChangeHandles(contentType: string | undefined, target: string | undefined, body: Buffer): string[];
export function correctReceiveCounts(body: Buffer, extra: (messageId: string) => number): Buffer;
