// A thin HTTP adapter in front of the `local-aws-sqs` emulator, so one endpoint serves both current
// `@aws-sdk/client-sqs` (JSON protocol) and Debian's boto3 1.26 / kombu 5.2 (query protocol).
// Plain JavaScript (typed by index.d.mts) so the tests and bench/sqs-bench.mjs share it unbuilt.
//
// It fixes exactly two emulator gaps, found by running kombu and the SDK against local-aws-sqs 2.0.2
// (packages/sqs/README.md, "Test rig"):
//
// 1. kombu 5.2's asynchronous receiver posts query-protocol requests to the queue URL's path
//    (`POST /123456789012/my-queue`, `Action=ReceiveMessage`) without a `QueueUrl` parameter, which
//    real SQS accepts. The emulator finds queues only by `QueueUrl`, so the adapter adds it from the
//    path.
// 2. A long poll asking for more than one message waits the full `WaitTimeSeconds` unless that many
//    messages are visible; real SQS returns as soon as any message is. The adapter first asks with
//    `WaitTimeSeconds=0`; only when that finds nothing does it long-poll for one message, which the
//    emulator returns as soon as one arrives.
// 3. The emulator counts a ChangeMessageVisibility as a receive (ApproximateReceiveCount goes up on
//    every extend or release); real SQS counts receives only. The adapter counts the visibility
//    changes it forwards per message and takes them off the count in JSON-protocol receive
//    responses (kombu never reads the count, so query-protocol responses are left alone).
// 4. The emulator cannot cancel a long poll: when a client aborts a receive (a consumer stopping),
//    the poll goes on and hides whatever arrives until the visibility timeout. When the client is
//    gone by the time the receive answers, the adapter makes those messages visible again.
//
// Everything else is forwarded byte for byte. Test infrastructure, not part of any package.
import http from "node:http";

const JSON_CONTENT_TYPE = "application/x-amz-json-1.0";

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Applies both rewrites to one request. Pure, so it is tested without a server. */
export function rewriteSqsRequest(path, contentType, target, body, publicBaseUrl) {
  if (contentType?.startsWith(JSON_CONTENT_TYPE)) {
    if (!target?.endsWith(".ReceiveMessage")) return { body };
    let input;
    try {
      input = JSON.parse(body.toString("utf8"));
    } catch {
      return { body };
    }
    const wait = Number(input.WaitTimeSeconds ?? 0);
    const max = Number(input.MaxNumberOfMessages ?? 1);
    if (!(wait > 0 && max > 1)) return { body };
    return {
      body,
      receive: {
        instant: Buffer.from(JSON.stringify({ ...input, WaitTimeSeconds: 0 })),
        single: Buffer.from(JSON.stringify({ ...input, MaxNumberOfMessages: 1 })),
      },
    };
  }
  const params = new URLSearchParams(body.toString("utf8"));
  let changed = false;
  const queuePath = path.split("?")[0] ?? "/";
  if (!params.has("QueueUrl") && queuePath !== "/" && queuePath !== "") {
    params.set("QueueUrl", publicBaseUrl.replace(/\/$/, "") + queuePath);
    changed = true;
  }
  const out = changed ? Buffer.from(params.toString()) : body;
  if (params.get("Action") !== "ReceiveMessage") return { body: out };
  const wait = Number(params.get("WaitTimeSeconds") ?? 0);
  const max = Number(params.get("MaxNumberOfMessages") ?? 1);
  if (!(wait > 0 && max > 1)) return { body: out };
  const instant = new URLSearchParams(params);
  instant.set("WaitTimeSeconds", "0");
  const single = new URLSearchParams(params);
  single.set("MaxNumberOfMessages", "1");
  return { body: out, receive: { instant: Buffer.from(instant.toString()), single: Buffer.from(single.toString()) } };
}

/** True when a ReceiveMessage response (JSON or XML) carries at least one message. */
export function hasMessages(contentType, body) {
  const text = body.toString("utf8");
  if (contentType?.startsWith(JSON_CONTENT_TYPE)) {
    if (text.trim() === "") return false; // the emulator answers an empty receive with no body
    try {
      const parsed = JSON.parse(text);
      return Array.isArray(parsed.Messages) && parsed.Messages.length > 0;
    } catch {
      return true; // not ours to judge: pass it through
    }
  }
  return text.includes("<Message>");
}

/** The MessageId inside one of the emulator's receipt handles (base64 of a uuid and a JSON object). */
export function messageIdOfReceiptHandle(handle) {
  try {
    const text = Buffer.from(handle, "base64").toString("utf8");
    return JSON.parse(text.slice(text.indexOf("{"))).MessageId ?? null;
  } catch {
    return null;
  }
}

/** Receipt handles of a ChangeMessageVisibility(Batch) request, either protocol; [] for other requests. */
export function visibilityChangeHandles(contentType, target, body) {
  if (contentType?.startsWith(JSON_CONTENT_TYPE)) {
    if (!target?.includes(".ChangeMessageVisibility")) return [];
    try {
      const input = JSON.parse(body.toString("utf8"));
      if (Array.isArray(input.Entries)) return input.Entries.map((e) => e.ReceiptHandle).filter((h) => typeof h === "string");
      return typeof input.ReceiptHandle === "string" ? [input.ReceiptHandle] : [];
    } catch {
      return [];
    }
  }
  const params = new URLSearchParams(body.toString("utf8"));
  const action = params.get("Action");
  if (action === "ChangeMessageVisibility") return params.has("ReceiptHandle") ? [params.get("ReceiptHandle")] : [];
  if (action !== "ChangeMessageVisibilityBatch") return [];
  return [...params].filter(([k]) => /ReceiptHandle$/.test(k)).map(([, v]) => v);
}

/** A JSON receive response with each message's ApproximateReceiveCount lowered by `extra(MessageId)`. */
export function correctReceiveCounts(body, extra) {
  let parsed;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return body;
  }
  if (!Array.isArray(parsed.Messages)) return body;
  let changed = false;
  for (const m of parsed.Messages) {
    const n = extra(m.MessageId);
    const count = Number(m.Attributes?.ApproximateReceiveCount);
    if (n > 0 && Number.isFinite(count)) {
      m.Attributes.ApproximateReceiveCount = String(Math.max(1, count - n));
      changed = true;
    }
  }
  return changed ? Buffer.from(JSON.stringify(parsed)) : body;
}

/** The adapter's request handler, forwarding to `upstream`; `close()` ends its upstream sockets. */
export function createSqsAdapter({ upstream, publicBaseUrl }) {
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  /** MessageId -> visibility changes forwarded (gap 3). Test-length state; dropped on delete. */
  const visibilityChanges = new Map();

  const forward = (req, body) =>
    new Promise((resolve, reject) => {
      const headers = { ...req.headers, host: up.host, "content-length": String(body.length) };
      const r = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers, agent }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      r.on("error", reject);
      r.end(body);
    });

  /** Gap 4: visibility 0 for what a receive nobody waits for any more took. */
  const giveBack = async (req, rewrittenBody, contentType, replyBody) => {
    const text = replyBody.toString("utf8");
    let handles;
    let queueUrl;
    if (contentType?.startsWith(JSON_CONTENT_TYPE)) {
      try {
        handles = (JSON.parse(text).Messages ?? []).map((m) => m.ReceiptHandle);
        queueUrl = JSON.parse(rewrittenBody.toString("utf8")).QueueUrl;
      } catch {
        return;
      }
    } else {
      handles = [...text.matchAll(/<ReceiptHandle>([^<]*)<\/ReceiptHandle>/g)].map((m) => m[1]);
      queueUrl = new URLSearchParams(rewrittenBody.toString("utf8")).get("QueueUrl");
    }
    for (const handle of handles) {
      const id = messageIdOfReceiptHandle(handle);
      if (id !== null) visibilityChanges.set(id, (visibilityChanges.get(id) ?? 0) + 1);
      const body = Buffer.from(JSON.stringify({ QueueUrl: queueUrl, ReceiptHandle: handle, VisibilityTimeout: 0 }));
      await forward(
        { method: "POST", url: "/", headers: { "content-type": JSON_CONTENT_TYPE, "x-amz-target": "AmazonSQS.ChangeMessageVisibility" } },
        body,
      ).catch(() => undefined);
    }
  };

  const handler = (req, res) => {
    let clientGone = false;
    res.on("close", () => {
      if (!res.writableFinished) clientGone = true;
    });
    void (async () => {
      try {
        const body = await readBody(req);
        const contentType = req.headers["content-type"];
        const target = req.headers["x-amz-target"];
        const rewritten = rewriteSqsRequest(req.url ?? "/", contentType, typeof target === "string" ? target : undefined, body, publicBaseUrl);
        const isJson = contentType?.startsWith(JSON_CONTENT_TYPE);
        if (isJson && typeof target === "string" && target.includes(".DeleteMessage")) {
          try {
            const input = JSON.parse(body.toString("utf8"));
            for (const h of [input.ReceiptHandle, ...(input.Entries ?? []).map((e) => e.ReceiptHandle)]) {
              if (typeof h === "string") visibilityChanges.delete(messageIdOfReceiptHandle(h));
            }
          } catch {
            // not ours to judge
          }
        }
        for (const h of visibilityChangeHandles(contentType, typeof target === "string" ? target : undefined, body)) {
          const id = messageIdOfReceiptHandle(h);
          if (id !== null) visibilityChanges.set(id, (visibilityChanges.get(id) ?? 0) + 1);
        }
        let reply;
        if (rewritten.receive) {
          reply = await forward(req, rewritten.receive.instant);
          if (reply.status === 200 && !hasMessages(contentType, reply.body)) reply = await forward(req, rewritten.receive.single);
        } else {
          reply = await forward(req, rewritten.body);
        }
        const isReceive = isJson
          ? typeof target === "string" && target.endsWith(".ReceiveMessage")
          : new URLSearchParams(rewritten.body.toString("utf8")).get("Action") === "ReceiveMessage";
        if (clientGone && isReceive && reply.status === 200 && hasMessages(contentType, reply.body)) {
          await giveBack(req, rewritten.body, contentType, reply.body);
          return;
        }
        if (isJson && typeof target === "string" && target.endsWith(".ReceiveMessage") && reply.status === 200 && visibilityChanges.size > 0) {
          reply = { ...reply, body: correctReceiveCounts(reply.body, (id) => visibilityChanges.get(id) ?? 0) };
        }
        const headers = { ...reply.headers, "content-length": String(reply.body.length) };
        delete headers["transfer-encoding"];
        delete headers["connection"];
        delete headers["keep-alive"];
        res.writeHead(reply.status, headers);
        res.end(reply.body);
      } catch (err) {
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
        res.end(`sqs adapter: ${err.message}`);
      }
    })();
  };
  return { handler, close: () => agent.destroy() };
}
