import { describe, expect, it } from "vitest";
import { loadUrlPackage, resultBackendFromUrl, transportFromUrl } from "@celeriac/core";
import { loadSchemePackage } from "../src/urls.js";

describe("broker URLs", () => {
  it("names the package to install when a scheme's package is missing", async () => {
    const missing = async (pkg: string) => {
      throw Object.assign(new Error(`Cannot find package '${pkg}' imported from x`), { code: "ERR_MODULE_NOT_FOUND" });
    };
    await expect(loadSchemePackage("redis", "redis://localhost", missing)).rejects.toMatchObject({
      code: "unsupported",
      message: expect.stringContaining("npm install @celeriac/redis"),
    });
    // Any other import failure is not disguised as a missing package.
    const broken = async () => {
      throw new SyntaxError("bad module");
    };
    await expect(loadSchemePackage("redis", "redis://localhost", broken)).rejects.toThrow("bad module");
  });

  it("loadUrlPackage checks a URL and imports its package without creating anything", async () => {
    await expect(loadUrlPackage("memory://")).resolves.toBeUndefined();
    await expect(loadUrlPackage("file:///tmp/results")).resolves.toBeUndefined();
    // A SQLite file in a folder that does not exist: creating the transport would fail, loading its package does not.
    await expect(loadUrlPackage("sqlite:///no/such/folder/x.db")).resolves.toBeUndefined();
    await expect(loadUrlPackage("kafka://localhost")).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("rejects unknown schemes and non-URLs with invalid_argument", async () => {
    await expect(transportFromUrl("kafka://x")).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(/unknown URL scheme "kafka"/),
    });
    await expect(transportFromUrl("localhost:5672")).rejects.toMatchObject({ code: "invalid_argument" });
  });

  it("passes transport options to a package that takes them, and refuses them elsewhere", async () => {
    await expect(transportFromUrl("memory://", { maxPriority: 10 })).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(/maxPriority/),
    });
    // @celeriac/sqlite's URL factory takes no options: refused, not ignored.
    await expect(transportFromUrl("sqlite:///tmp/celeriac-url-opts.db", { maxPriority: 10 })).rejects.toMatchObject({ code: "invalid_argument" });
    const amqp = await transportFromUrl("amqp://127.0.0.1:1//;amqp://127.0.0.1:2//", { maxPriority: 10 });
    expect(amqp.capabilities.priority).toBe("native");
    await expect(transportFromUrl("amqp://127.0.0.1:1//", { nonsense: true })).rejects.toMatchObject({ code: "invalid_argument" });
    await amqp.close();
  });

  it("builds the in-process and file backends without any package", async () => {
    const t = await transportFromUrl("memory://");
    expect(t.name).toBe("memory");
    expect((await resultBackendFromUrl("memory://")).name).toBe("memory");
    expect((await resultBackendFromUrl("file:///tmp/celeriac-url-test")).name).toBe("file");
  });
});
