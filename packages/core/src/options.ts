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

/**
 * The keys of an options interface as the runtime list `assertKnownOptions` takes, written so
 * that tsc keeps the two in step: every key of `T` must be listed and no other key may be, so
 * adding an option to the interface without listing it (or the reverse) is a compile error.
 * `T` must be given explicitly: `optionKeys<WorkerOptions>({ transport: true, ... })`.
 */
export function optionKeys<T extends object = never>(keys: NoInfer<{ readonly [K in keyof T]-?: true }>): readonly (keyof T & string)[] {
  return Object.keys(keys) as (keyof T & string)[];
}

/** The argument checks every `Transport.consume` makes: at least one queue, a positive integer prefetch. */
export function assertConsumeArguments(queues: readonly string[], options: { prefetch: number }): void {
  if (queues.length === 0) throw new CeleriacError("invalid_argument", "consume: at least one queue is required");
  if (!Number.isInteger(options.prefetch) || options.prefetch < 1) {
    throw new CeleriacError("invalid_argument", `consume: prefetch must be a positive integer, got ${String(options.prefetch)}`);
  }
}
