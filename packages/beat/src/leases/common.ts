import { CeleriacError } from "@celeriac/core";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { DEFAULT_LEASE_MS, type LeaseOptions } from "../lease.js";

export function defaultHolder(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
}

/** The options every lease shares, checked once. */
export function checkLeaseOptions(options: LeaseOptions): { name: string; leaseMs: number; holder: string } {
  const name = options.name ?? "celery";
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const holder = options.holder ?? defaultHolder();
  if (typeof name !== "string" || !/^[\w.:-]+$/.test(name))
    throw new CeleriacError("invalid_argument", `lease name must be letters, digits, "_", ".", ":" or "-", got ${JSON.stringify(name)}`);
  if (!Number.isInteger(leaseMs) || leaseMs < 1000) throw new CeleriacError("invalid_argument", `leaseMs must be an integer >= 1000, got ${String(leaseMs)}`);
  if (typeof holder !== "string" || holder === "" || holder.includes("|"))
    throw new CeleriacError("invalid_argument", "holder must be a non-empty string without '|'");
  return { name, leaseMs, holder };
}
