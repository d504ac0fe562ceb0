import { describe, expect, it } from "vitest";
import { assertKnownOptions, CeleriacError, optionKeys } from "@celeriac/core/transport";

interface Example {
  url?: string;
  timeoutMs: number;
}

describe("optionKeys", () => {
  it("lists every key of the interface, for assertKnownOptions", () => {
    const keys = optionKeys<Example>({ url: true, timeoutMs: true });
    expect([...keys].sort()).toEqual(["timeoutMs", "url"]);
    expect(() => assertKnownOptions("example", { url: "x", timeoutMs: 1 }, keys)).not.toThrow();
    expect(() => assertKnownOptions("example", { timeoutMS: 1 }, keys)).toThrow(CeleriacError);
  });

  it("does not compile when the list and the interface drift apart", () => {
    // These lines are checked by `tsc` (npm run typecheck): each directive fails the build if the
    // call below it compiles. At run time they still return what they were given.
    // @ts-expect-error a key of the interface is missing
    expect(optionKeys<Example>({ url: true })).toEqual(["url"]);
    // @ts-expect-error a key the interface does not have
    expect(optionKeys<Example>({ url: true, timeoutMs: true, retries: true })).toHaveLength(3);
    // @ts-expect-error the interface must be named: nothing is inferred from the list itself
    expect(optionKeys({ url: true })).toEqual(["url"]);
  });
});
