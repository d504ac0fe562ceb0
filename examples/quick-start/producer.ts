// producer.ts: sends tasks.add and prints its result
import { createClient, resultBackendFromUrl, transportFromUrl } from "@celeriac/core";
import { add } from "./tasks.js";

const url = "sqlite:///celeriac.db"; // the file the worker uses by default
const transport = await transportFromUrl(url);
const resultBackend = await resultBackendFromUrl(url);
const client = createClient({ transport, resultBackend });
try {
  const result = await client.send(add, [2, 3]);
  console.log(await result.get({ timeoutMs: 10_000 })); // 5, typed as number
} finally {
  await client.close();
  await transport.close(); // whoever creates a connection closes it
  await resultBackend.close();
}
