import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generate, generateToDir, loadSchema, taskJsonSchemas } from "@celeriac/schema";
import { describe, expect, it } from "vitest";

const repo = fileURLToPath(new URL("../../../", import.meta.url));
const example = join(repo, "examples", "schema-package");
const proto = join(example, "proto", "acme", "billing", "v1", "billing.proto");
const committed = join(example, "generated");

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((f) => (statSync(join(dir, f)).isDirectory() ? listFiles(join(dir, f)).map((g) => join(f, g)) : [f]))
    .sort();
}

describe("code generation", () => {
  it("is deterministic: regenerating the example into a temp dir reproduces the committed files byte for byte", () => {
    const out = mkdtempSync(join(tmpdir(), "celeriac-codegen-"));
    const target = join(out, "generated");
    // What `npm run generate` in the example runs.
    generateToDir([proto], target, { name: "billing", includePaths: [join(example, "proto")] });
    const fresh = listFiles(target);
    expect(fresh).toEqual(listFiles(committed));
    for (const f of fresh) expect(readFileSync(join(target, f), "utf8"), f).toBe(readFileSync(join(committed, f), "utf8"));
    // And twice in a row in memory.
    const a = generate([proto], { name: "billing", includePaths: [join(example, "proto")] });
    const b = generate([proto], { name: "billing", includePaths: [join(example, "proto")] });
    expect(a).toEqual(b);
    expect(a.map((f) => f.path).sort()).toEqual(listFiles(committed));
  });

  it("keeps field names as written and reads the task options", () => {
    const schema = loadSchema([proto]);
    expect(schema.tasks.map((t) => [t.name, t.service, t.method, t.options])).toEqual([
      [
        "billing.charge_invoice",
        "acme.billing.v1.Billing",
        "ChargeInvoice",
        { queue: "billing", maxRetries: 5, timeLimitMs: 30000, softTimeLimitMs: 25000, priority: 5 },
      ],
      ["billing.refund", "acme.billing.v1.Billing", "Refund", { queue: "billing.refunds", maxRetries: 3 }],
    ]);
    const fields = schema.messages["acme.billing.v1.ChargeInvoiceRequest"]!.fields;
    expect(fields.map((f) => `${f.name}:${f.label}`)).toEqual([
      "invoice_id:required",
      "customer_id:required",
      "currency:required",
      "items:repeated",
      "due_at:required",
      "metadata:map",
      "memo:optional",
      "signature:required",
    ]);
  });

  it("emits a JSON Schema of each task's kwargs and result", () => {
    const schema = loadSchema([proto]);
    const s = taskJsonSchemas(schema, schema.tasks[0]!);
    expect(s.kwargs).toMatchObject({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      additionalProperties: false,
      required: ["invoice_id", "customer_id", "currency", "items", "due_at", "metadata", "signature"],
      properties: {
        customer_id: { type: "integer" },
        currency: { $ref: "#/$defs/acme.billing.v1.Currency" },
        items: { type: "array", items: { $ref: "#/$defs/acme.billing.v1.LineItem" } },
        due_at: { type: "string", format: "date-time" },
        metadata: { type: "object", additionalProperties: { type: "string" } },
        memo: { anyOf: [{ type: "string" }, { type: "null" }] },
        signature: { type: "string", contentEncoding: "base64" },
      },
      $defs: { "acme.billing.v1.Currency": { enum: ["CURRENCY_UNSPECIFIED", "EUR", "USD", "GBP"] } },
    });
    expect(s.result).toMatchObject({ required: ["invoice_id", "status", "total_cents", "charged_at", "signature_digest"] });
    expect(JSON.parse(readFileSync(join(committed, "jsonschema", "billing.charge_invoice.kwargs.json"), "utf8"))).toEqual(s.kwargs);
  });

  it("rejects schemas it cannot map, with the reason", () => {
    const dir = mkdtempSync(join(tmpdir(), "celeriac-bad-proto-"));
    const write = (body: string) => {
      const file = join(dir, `f${Math.random().toString(36).slice(2)}.proto`);
      execFileSync("sh", ["-c", `cat > ${file}`], { input: `syntax = "proto3";\npackage t;\nimport "celeriac/v1/options.proto";\n${body}` });
      return file;
    };
    expect(() => loadSchema([write("message A {}\nservice S { rpc X(A) returns (A); }")])).toThrow(/needs option \(celeriac\.v1\.task\)/);
    expect(() =>
      loadSchema([
        write('message A { oneof k { string a = 1; int32 b = 2; } }\nservice S { rpc X(A) returns (A) { option (celeriac.v1.task) = { name: "x" }; } }'),
      ]),
    ).toThrow(/oneof is not supported/);
    expect(() => loadSchema([write("message A {}")])).toThrow(/no tasks/);
  });

  it("makes a package npm can pack: compiled handles, generated code, Python stub, JSON Schemas and the .proto", () => {
    // prepack compiles generated/billing.ts to dist/ (against the built @celeriac/schema, as `npm test` builds first).
    const out = execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: example, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const [pack] = JSON.parse(out) as { name: string; files: { path: string }[] }[];
    expect(pack!.name).toBe("@acme/billing-tasks");
    const paths = pack!.files.map((f) => f.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "package.json",
        "dist/billing.js",
        "dist/billing.d.ts",
        "generated/billing.ts",
        "generated/billing_tasks.py",
        "generated/jsonschema/billing.charge_invoice.kwargs.json",
        "generated/jsonschema/billing.refund.result.json",
        "proto/acme/billing/v1/billing.proto",
      ]),
    );
  });
});
