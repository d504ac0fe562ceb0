import { CeleriacError } from "./errors.js";

/**
 * Rejects option keys a factory does not know, so a misspelt option fails loudly instead of
 * being ignored (the untyped-dict trap of kombu's transport_options).
 */
export function assertKnownOptions(where: string, options: object | undefined, known: readonly string[]): void {
  if (options === undefined) return;
  const unknown = Object.keys(options).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new CeleriacError(
      "invalid_argument",
      `${where}: unknown option${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => JSON.stringify(k)).join(", ")}; known options are ${known.join(", ")}`,
    );
  }
}

/** The argument checks every `Transport.consume` makes: at least one queue, a positive integer prefetch. */
export function assertConsumeArguments(queues: readonly string[], options: { prefetch: number }): void {
  if (queues.length === 0) throw new CeleriacError("invalid_argument", "consume: at least one queue is required");
  if (!Number.isInteger(options.prefetch) || options.prefetch < 1) {
    throw new CeleriacError("invalid_argument", `consume: prefetch must be a positive integer, got ${String(options.prefetch)}`);
  }
}
