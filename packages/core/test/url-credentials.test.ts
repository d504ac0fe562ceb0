import { describe, expect, it } from "vitest";
import { CeleriacError, maskUrl, transportFromUrl } from "@celeriac/core";
import { pyUnquote, rawDelimiterInPassword, splitUrlCredentials, withEncodedCredentials } from "@celeriac/core/transport";

// Expected values are what Python 3.11's urllib.parse.urlsplit/unquote and kombu 5.2's
// url_to_parts / sanitize_url give for the same strings (checked with /usr/bin/python3).
describe("credentials in broker URLs", () => {
  it("splits at the last @ of the netloc, as urllib.parse.urlsplit (and so kombu) does", () => {
    expect(splitUrlCredentials("amqp://user:p@ss@host//")).toEqual({ scheme: "amqp", username: "user", password: "p@ss", hostPort: "host", rest: "//" });
    expect(splitUrlCredentials("AMQP://user:p%40ss@host:5673/v?x=1")).toEqual({
      scheme: "amqp",
      username: "user",
      password: "p@ss",
      hostPort: "host:5673",
      rest: "/v?x=1",
    });
    expect(splitUrlCredentials("redis://:p:w@h:6379/0")).toMatchObject({ username: "", password: "p:w", hostPort: "h:6379" });
    expect(splitUrlCredentials("sqs://KEY:se@cret@")).toMatchObject({ username: "KEY", password: "se@cret", hostPort: "" });
    expect(splitUrlCredentials("redis://localhost")).toMatchObject({ username: undefined, password: undefined, hostPort: "localhost" });
    expect(splitUrlCredentials("localhost:5672")).toBeNull();
  });

  it("unquotes as Python does: invalid escapes stay, never throws", () => {
    expect(pyUnquote("50%off")).toBe("50%off");
    expect(pyUnquote("a%zz%40b%2F")).toBe("a%zz@b/");
    expect(pyUnquote("%C3%A9")).toBe("é");
    expect(pyUnquote("%ff")).toBe("\ufffd");
  });

  it("re-encodes credentials so any URL parser reads what Python reads", () => {
    expect(withEncodedCredentials("amqp://user:p@ss@host//")).toBe("amqp://user:p%40ss@host//");
    expect(withEncodedCredentials("amqp://user:p%40ss@host//")).toBe("amqp://user:p%40ss@host//");
    expect(new URL(withEncodedCredentials("amqp://u:a:b%zz@h//")).password).toBe("a%3Ab%25zz");
    expect(withEncodedCredentials("amqp://host//")).toBe("amqp://host//");
  });

  it("masks the password however the URL is written, wherever it appears", () => {
    const cases: [string, string][] = [
      ["amqp://user:p@ss@host//", "amqp://user:**@host//"],
      ["amqp://user:p%40ss@host:5672/v", "amqp://user:**@host:5672/v"],
      ["amqp://u:a@b@h1;amqp://u:c@d@h2//", "amqp://u:**@h1;amqp://u:**@h2//"],
      ["sentinel://:pw@h1:26379;sentinel://:pw2@h2:26379/0", "sentinel://:**@h1:26379;sentinel://:**@h2:26379/0"],
      ["sqs://AKIA:se/cr@et@localhost:9324?region=x", "sqs://AKIA:**@localhost:9324?region=x"],
      ["cannot connect to rediss://u:p#x@h/0: ECONNREFUSED 127.0.0.1:6379", "cannot connect to rediss://u:**@h/0: ECONNREFUSED 127.0.0.1:6379"],
      ['not an SQS URL: "sqs://K:S@x/y/z"; expected', 'not an SQS URL: "sqs://K:**@x/y/z"; expected'],
      ["redis://localhost:6379/0 and amqp://guest@h//", "redis://localhost:6379/0 and amqp://guest@h//"],
      ["no url here: user:pw@host", "no url here: user:pw@host"],
    ];
    for (const [text, masked] of cases) expect(maskUrl(text)).toBe(masked);
  });

  it("refuses a password holding a raw /, ? or # (every parser would read the rest as a path) without echoing it", async () => {
    expect(rawDelimiterInPassword("redis://:s3cr@t:p@ss/w0rd@127.0.0.1:6379/0")).toBe("/");
    expect(rawDelimiterInPassword("amqp://u:a#b@h//")).toBe("#");
    expect(rawDelimiterInPassword("amqp://u:p@ss@h//;amqp://u:x?y@h2//")).toBe("?");
    expect(rawDelimiterInPassword("amqp://u:p@ss@h/vhost?heartbeat=5")).toBeNull();
    expect(rawDelimiterInPassword("sqs://K:S@?region=x")).toBeNull();
    expect(rawDelimiterInPassword("sqlite:////home/me/a@b/celery.db")).toBeNull();
    const err = (await transportFromUrl("redis://:s3cr@t:p@ss/w0rd@127.0.0.1:6379/0").then(
      () => expect.fail("accepted"),
      (e: unknown) => e,
    )) as CeleriacError;
    expect(err).toMatchObject({ code: "invalid_argument" });
    expect(err.message).toMatch(/holds a raw "\/": percent-encode it as %2F/);
    for (const fragment of ["s3cr", "p@ss", "w0rd"]) expect(err.message).not.toContain(fragment);
  });

  it("no CeleriacError message carries a password, also one wrapped from another library", () => {
    expect(new CeleriacError("connection", "cannot reach amqp://u:p@ss@h//").message).toBe("cannot reach amqp://u:**@h//");
    expect(CeleriacError.from(new Error("connect redis://:hunter2@h:1 refused")).message).not.toContain("hunter2");
  });
});
