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
  const { requestHandler } = createRequestHandler({
    port,
    hostname: "127.0.0.1",
    emulateQueueCreationLifecycle: false,
    validateDlqDestination: false,
  });
  const back = http.createServer((req, res) => void requestHandler(req, res));
  back.keepAliveTimeout = 60_000;
  front.keepAliveTimeout = 60_000;
  const backPort = await listen(back);
  const adapter = createSqsAdapter({ upstream: `http://127.0.0.1:${backPort}`, publicBaseUrl: endpoint });
  front.on("request", adapter.handler);
  return {
    endpoint,
    port,
    upstream: `http://127.0.0.1:${backPort}`,
    async close() {
      adapter.close();
      await Promise.all([closeServer(front), closeServer(back)]);
    },
  };
}
