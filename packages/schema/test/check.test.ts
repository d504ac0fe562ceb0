import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkCompatibility, loadSchema, type BreakingChangeKind } from "@celeriac/schema";
import { describe, expect, it } from "vitest";

const dir = mkdtempSync(join(tmpdir(), "celeriac-check-"));
let n = 0;

/** Writes a version of the test schema; `edit` rewrites parts of the base text. */
function version(edit: (base: string) => string = (b) => b): ReturnType<typeof loadSchema> {
  const file = join(dir, `v${n++}.proto`);
  writeFileSync(file, edit(BASE));
  return loadSchema([file]);
}

const BASE = `syntax = "proto3";
package shop.v1;
import "celeriac/v1/options.proto";
import "google/protobuf/timestamp.proto";
enum Kind { KIND_UNSPECIFIED = 0; BOOK = 1; GAME = 2; }
message Item { string sku = 1; int32 qty = 2; }
message OrderRequest {
  string order_id = 1;
  int64 amount = 2;
  Kind kind = 3;
  repeated Item items = 4;
  optional string note = 5;
  google.protobuf.Timestamp at = 6;
}
message OrderResult { string receipt = 1; optional string warning = 2; int64 total = 3; }
service Shop {
  option (celeriac.v1.service) = { queue: "shop" };
  rpc PlaceOrder(OrderRequest) returns (OrderResult) { option (celeriac.v1.task) = { name: "shop.place_order" }; }
  rpc CancelOrder(OrderRequest) returns (OrderResult) { option (celeriac.v1.task) = { name: "shop.cancel_order" }; }
}
`;

const kinds = (edit: (base: string) => string): BreakingChangeKind[] => checkCompatibility(version(), version(edit)).breaking.map((c) => c.kind);
const messages = (edit: (base: string) => string): string[] => checkCompatibility(version(), version(edit)).breaking.map((c) => c.message);

describe("schema check", () => {
  it("passes an unchanged schema and compatible changes: added optional fields, new tasks, new enum values", () => {
    expect(checkCompatibility(version(), version()).breaking).toEqual([]);
    const report = checkCompatibility(
      version(),
      version((b) =>
        b
          .replace("google.protobuf.Timestamp at = 6;", "google.protobuf.Timestamp at = 6;\n  optional string coupon = 7;")
          .replace("GAME = 2;", "GAME = 2; MUSIC = 3;")
          .replace("int64 total = 3; }", "int64 total = 3; repeated string tags = 4; }")
          .replace("  rpc CancelOrder", '  rpc Ping(Item) returns (Item) { option (celeriac.v1.task) = { name: "shop.ping" }; }\n  rpc CancelOrder'),
      ),
    );
    expect(report.breaking).toEqual([]);
    expect(report.compatible).toEqual(
      expect.arrayContaining([
        "shop.place_order: kwargs.coupon: field added (optional string)",
        "shop.place_order: result.tags: field added (repeated string)",
        "task shop.ping added",
      ]),
    );
    // A required kwarg may become optional: old producers still send it.
    expect(kinds((b) => b.replace("string order_id = 1;", "optional string order_id = 1;"))).toEqual([]);
  });

  it("reports a removed field", () => {
    expect(kinds((b) => b.replace("  int64 amount = 2;\n", ""))).toEqual(["field_removed", "field_removed"]);
    expect(messages((b) => b.replace("optional string warning = 2; ", ""))[0]).toBe("shop.place_order: result.warning: field removed (optional string)");
  });

  it("reports a renamed field (same number, new name)", () => {
    expect(messages((b) => b.replace("int64 amount = 2;", "int64 amount_cents = 2;"))[0]).toBe(
      "shop.place_order: kwargs.amount: field renamed to amount_cents (kwargs and JSON results are matched by name)",
    );
  });

  it("reports a changed type, also inside nested messages and lists", () => {
    expect(kinds((b) => b.replace("int64 amount = 2;", "string amount = 2;"))).toEqual(["field_type_changed", "field_type_changed"]);
    expect(messages((b) => b.replace("int32 qty = 2;", "double qty = 2;"))[0]).toBe("shop.place_order: kwargs.items.qty: type changed from int32 to double");
    expect(kinds((b) => b.replace("repeated Item items = 4;", "Item items = 4;"))[0]).toBe("field_type_changed");
    expect(kinds((b) => b.replace("int64 total = 3;", "int32 total = 3;"))[0]).toBe("field_type_changed");
    expect(messages((b) => b.replace("Kind kind = 3;", "string kind = 3;"))[0]).toBe("shop.place_order: kwargs.kind: type changed from shop.v1.Kind to string");
  });

  it("reports a changed field number", () => {
    expect(messages((b) => b.replace("Kind kind = 3;", "Kind kind = 9;"))[0]).toBe(
      "shop.place_order: kwargs.kind: field number changed from 3 to 9 (protobuf encodings and reserved numbers rely on it)",
    );
  });

  it("reports required-ness changes in the direction that breaks", () => {
    expect(messages((b) => b.replace("optional string note = 5;", "string note = 5;"))[0]).toBe(
      "shop.place_order: kwargs.note: optional field became required: producers that leave it out are rejected",
    );
    expect(kinds((b) => b.replace("string receipt = 1;", "optional string receipt = 1;"))[0]).toBe("field_required_changed");
    expect(kinds((b) => b.replace("google.protobuf.Timestamp at = 6;", "google.protobuf.Timestamp at = 6;\n  string region = 7;"))).toEqual([
      "required_field_added",
      "required_field_added",
    ]);
  });

  it("reports renamed and removed tasks, and removed enum values", () => {
    const renamed = checkCompatibility(
      version(),
      version((b) => b.replace('name: "shop.place_order"', 'name: "shop.orders.place"')),
    ).breaking;
    expect(renamed).toEqual([
      expect.objectContaining({ kind: "task_renamed", task: "shop.place_order", message: expect.stringContaining("renamed to shop.orders.place") as unknown }),
    ]);
    expect(kinds((b) => b.replace(/ {2}rpc CancelOrder.*\n/, ""))).toEqual(["task_removed"]);
    expect(messages((b) => b.replace(" GAME = 2;", ""))[0]).toBe(
      "shop.place_order: kwargs.kind: enum value GAME removed from shop.v1.Kind (enums travel by name)",
    );
  });
});
