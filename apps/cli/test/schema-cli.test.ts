import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { celeriac } from "./cli-helpers.js";

const repo = fileURLToPath(new URL("../../../", import.meta.url));
const example = join(repo, "examples", "schema-package");
const proto = join(example, "proto", "acme", "billing", "v1", "billing.proto");

describe("celeriac codegen", () => {
  it("writes the same files as the committed example output (what the example's `npm run generate` runs)", async () => {
    const out = mkdtempSync(join(tmpdir(), "celeriac-cli-codegen-"));
    const r = await celeriac(["codegen", "proto/acme/billing/v1/billing.proto", "--out", out, "--name", "billing", "-I", "proto"], { cwd: example });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("billing_tasks.py");
    for (const f of ["billing.ts", "billing_tasks.py", "jsonschema/billing.refund.kwargs.json"]) {
      expect(readFileSync(join(out, f), "utf8"), f).toBe(readFileSync(join(example, "generated", f), "utf8"));
    }
  });

  it("fails with a clear message and exit code 2 on a schema without task options", async () => {
    const dir = mkdtempSync(join(tmpdir(), "celeriac-cli-badproto-"));
    writeFileSync(join(dir, "x.proto"), 'syntax = "proto3";\npackage x;\nmessage A {}\nservice S { rpc Do(A) returns (A); }\n');
    const r = await celeriac(["codegen", join(dir, "x.proto"), "--out", dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/x\.S\.Do: every rpc of a task service needs option \(celeriac\.v1\.task\)/);
  });
});

describe("celeriac schema check", () => {
  const dir = mkdtempSync(join(tmpdir(), "celeriac-cli-check-"));
  const base = readFileSync(proto, "utf8");
  const variant = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it("exits 0 on a compatible change (an added optional field)", async () => {
    const next = variant("added.proto", base.replace("bytes signature = 8;", "bytes signature = 8;\n  optional string coupon = 9;"));
    const r = await celeriac(["schema", "check", proto, next]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("ok: billing.charge_invoice: kwargs.coupon: field added (optional string)");
    expect(r.stdout).toContain("no breaking changes");
  });

  it("exits 1 and lists each breaking change", async () => {
    const next = variant(
      "broken.proto",
      base
        .replace("int64 customer_id = 2;", "string customer_id = 2;")
        .replace("  optional string memo = 7;\n", "")
        .replace('name: "billing.refund"', 'name: "billing.refund_v2"'),
    );
    const r = await celeriac(["schema", "check", proto, next]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("BREAKING field_type_changed: billing.charge_invoice: kwargs.customer_id: type changed from int64 to string");
    expect(r.stdout).toContain("BREAKING field_removed: billing.charge_invoice: kwargs.memo: field removed (optional string)");
    expect(r.stdout).toContain("BREAKING task_renamed: task billing.refund (acme.billing.v1.Billing.Refund) was renamed to billing.refund_v2");
    expect(r.stdout).toContain("3 breaking change(s)");
    const json = await celeriac(["schema", "check", "--json", proto, next]);
    expect(json.code).toBe(1);
    expect((JSON.parse(json.stdout) as { breaking: { kind: string }[] }).breaking.map((c) => c.kind)).toEqual([
      "field_type_changed",
      "field_removed",
      "task_renamed",
    ]);
  });
});
