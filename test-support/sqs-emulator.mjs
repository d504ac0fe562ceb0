// Starts the SQS test rig on loopback: the `local-aws-sqs` emulator on a free port, behind the
// repo's adapter (./sqs-adapter/index.mjs) on another free port. Clients (the SDK, boto3/kombu) talk
// to the adapter's `endpoint`; queue URLs the emulator hands out point at the adapter too.
// Used by packages/sqs tests and bench/sqs-bench.mjs.
import http from "node:http";
import { createRequestHandler } from "local-aws-sqs";
import { createSqsAdapter } from "./sqs-adapter/index.mjs";

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server.address().port));
  });
}

function closeServer(server) {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export async function startSqsEmulator() {
  const front = http.createServer();
  const port = await listen(front);
  const endpoint = `http://127.0.0.1:${port}`;
  // The emulator builds queue URLs from hostname and port: give it the adapter's.
  const fresh = () =>
    createRequestHandler({
      port,
      hostname: "127.0.0.1",
      emulateQueueCreationLifecycle: false,
      validateDlqDestination: false,
    }).requestHandler;
  let requestHandler = fresh();
  // While "down" (restart with downMs), every connection is dropped, as by a stopped endpoint.
  let down = false;
  const back = http.createServer((req, res) => (down ? req.socket.destroy() : void requestHandler(req, res)));
  back.keepAliveTimeout = 60_000;
  front.keepAliveTimeout = 60_000;
  const backPort = await listen(back);
  const adapter = createSqsAdapter({ upstream: `http://127.0.0.1:${backPort}`, publicBaseUrl: endpoint });
  front.on("request", (req, res) => (down ? req.socket.destroy() : adapter.handler(req, res)));
  return {
    endpoint,
    port,
    upstream: `http://127.0.0.1:${backPort}`,
    /** An endpoint restart that loses every queue and message (the emulator keeps nothing on disk). */
    async restart({ downMs = 0 } = {}) {
      down = true;
      front.closeAllConnections();
      back.closeAllConnections();
      await new Promise((r) => setTimeout(r, downMs));
      requestHandler = fresh();
      down = false;
    },
    async close() {
      adapter.close();
      await Promise.all([closeServer(front), closeServer(back)]);
    },
  };
}
