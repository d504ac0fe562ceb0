import { CeleriacError } from "@celeriac/core";
import { assertKnownOptions } from "@celeriac/core/transport";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { EntryState, LeaderLease, LeaseOptions } from "../lease.js";
import { checkLeaseOptions } from "./common.js";

export interface SqsLeaseOptions extends LeaseOptions {
  /** sqs:// URL of the broker, as the SQS transport reads it (credentials, endpoint, region). */
  url: string;
}

const KNOWN = ["url", "name", "leaseMs", "holder"] as const;
const GROUP = "leader";

interface Token {
  epoch: number;
  seq: number;
  state: Record<string, EntryState>;
  /** When the holder wrote it (its clock); a token younger than the lease belongs to a live leader. */
  writtenAt: number;
  /** Written by a leader stepping down: free to take at once. */
  released?: boolean;
}
const newer = (a: Token, b: Token) => a.epoch > b.epoch || (a.epoch === b.epoch && a.seq > b.seq);

/**
 * Leadership on SQS: the FIFO queue `celeriac-beat-<name>-leader.fifo` holds one token message in
 * one message group. The leader is whoever received it and keeps it in flight by extending its
 * visibility (ChangeMessageVisibility) every leaseMs / 3; while it is in flight nobody else can
 * receive it, and a FIFO group delivers nothing behind an in-flight message. A leader that dies
 * stops extending; the token becomes visible after the visibility timeout (the lease, whole
 * seconds) and the next poller receives it. The token carries the state: a write sends the newer
 * token, receives it and deletes the held one (or, where the group is blocked behind the held one as
 * in real SQS, deletes first and then receives); a crash between leaves two tokens and the next
 * leader keeps the newer. A replica that receives a token written less than a lease ago by a leader
 * that did not release it hands it straight back: during a write the newer token may be visible for
 * a moment (the emulator does not block a FIFO group behind an in-flight message), and it is not
 * free. On SIGTERM the leader writes a released token, which the next poller takes at once.
 */
export async function createSqsLease(options: SqsLeaseOptions): Promise<LeaderLease> {
  assertKnownOptions("createSqsLease", options, KNOWN);
  const { name, leaseMs } = checkLeaseOptions(options);
  let sdk: typeof import("@aws-sdk/client-sqs");
  let parse: (url: string) => { endpoint?: string; region?: string; credentials?: { accessKeyId: string; secretAccessKey: string }; queueNamePrefix?: string };
  try {
    sdk = await import("@aws-sdk/client-sqs");
    parse = (await import("@celeriac/sqs")).parseSqsUrl;
  } catch (err) {
    throw new CeleriacError("unsupported", "the SQS lease needs @celeriac/sqs and @aws-sdk/client-sqs: npm install @celeriac/sqs", { cause: err });
  }
  const o = parse(options.url);
  const leaseS = Math.ceil(leaseMs / 1000);
  const client: SQSClient = new sdk.SQSClient({
    region: o.region ?? process.env["AWS_REGION"] ?? process.env["AWS_DEFAULT_REGION"] ?? "us-east-1",
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    ...(o.credentials ? { credentials: o.credentials } : {}),
  });
  const queueName = `${o.queueNamePrefix ?? ""}celeriac-beat-${name.replace(/[^\w-]/g, "_")}-leader.fifo`;
  let queueUrl: string;
  try {
    const created = await client.send(
      new sdk.CreateQueueCommand({ QueueName: queueName, Attributes: { FifoQueue: "true", VisibilityTimeout: String(leaseS) } }),
    );
    queueUrl = created.QueueUrl!;
    const attrs = await client.send(
      new sdk.GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }),
    );
    const count = Number(attrs.Attributes?.["ApproximateNumberOfMessages"] ?? 0) + Number(attrs.Attributes?.["ApproximateNumberOfMessagesNotVisible"] ?? 0);
    // The first replica ever creates the token; replicas starting together send the same
    // deduplication id, so SQS keeps one.
    if (count === 0) await send({ epoch: 0, seq: 0, state: {}, writtenAt: 0 });
  } catch (err) {
    client.destroy();
    throw new CeleriacError("connection", `cannot set up the SQS beat lease queue ${queueName}: ${(err as Error).message}`, { cause: err });
  }

  let held: { token: Token; receipt: string } | null = null;
  let myEpoch: number | null = null;

  async function send(token: Token): Promise<void> {
    await client.send(
      new sdk.SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify(token),
        MessageGroupId: GROUP,
        MessageDeduplicationId: `${token.epoch}-${token.seq}`,
      }),
    );
  }

  /** Receives what tokens are deliverable now; keeps the newest in flight, deletes the others. */
  async function receive(waitS: number): Promise<{ token: Token; receipt: string } | null> {
    const r = await client.send(
      new sdk.ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: leaseS, WaitTimeSeconds: waitS }),
    );
    let best: { token: Token; receipt: string } | null = null;
    for (const m of r.Messages ?? []) {
      let token: Token | null = null;
      try {
        const t = JSON.parse(m.Body ?? "") as Token;
        if (Number.isInteger(t.epoch) && Number.isInteger(t.seq) && typeof t.state === "object" && t.state !== null && typeof t.writtenAt === "number")
          token = t;
      } catch {
        token = null;
      }
      if (token && (!best || newer(token, best.token))) {
        if (best) await drop(best.receipt);
        best = { token, receipt: m.ReceiptHandle! };
      } else await drop(m.ReceiptHandle!);
    }
    return best;
  }

  const drop = (receipt: string) => client.send(new sdk.DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: receipt }));

  const handBack = (receipt: string) =>
    client.send(new sdk.ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: receipt, VisibilityTimeout: 0 }));
  const isToken = (got: { token: Token } | null, t: Token) => got !== null && got.token.epoch === t.epoch && got.token.seq === t.seq;

  /** Replaces the held token by `token`; false when another replica received it first. */
  async function replace(token: Token): Promise<boolean> {
    const old = held!;
    await send(token);
    let got = await receive(0);
    if (isToken(got, token)) {
      await drop(old.receipt);
      held = got;
      return true;
    }
    if (got) await handBack(got.receipt);
    // Real SQS delivers nothing of the group while the held token is in flight: delete it first.
    await drop(old.receipt);
    held = null;
    got = await receive(1);
    if (isToken(got, token)) {
      held = got;
      return true;
    }
    if (got) await handBack(got.receipt); // a newer leader's: not ours to keep
    return false;
  }

  const holds = (epoch: number) => held !== null && myEpoch === epoch && held.token.epoch === epoch;

  return {
    kind: "sqs",
    leaseMs: leaseS * 1000,
    async tryAcquire() {
      if (myEpoch !== null && holds(myEpoch)) return myEpoch;
      myEpoch = null;
      held = await receive(0);
      if (!held) return null;
      if (!held.token.released && held.token.writtenAt + leaseMs > Date.now()) {
        // A live leader's token, visible for a moment during its write: not free.
        const receipt = held.receipt;
        held = null;
        await handBack(receipt);
        return null;
      }
      const epoch = held.token.epoch + 1;
      myEpoch = epoch;
      if (await replace({ epoch, seq: 0, state: held.token.state, writtenAt: Date.now() })) return epoch;
      myEpoch = null;
      return null;
    },
    async renew(epoch) {
      if (!holds(epoch)) return false;
      try {
        await client.send(new sdk.ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: held!.receipt, VisibilityTimeout: leaseS }));
        return true;
      } catch {
        held = null;
        myEpoch = null;
        return false;
      }
    },
    async release(epoch) {
      if (!holds(epoch)) return;
      const { token, receipt } = held!;
      held = null;
      myEpoch = null;
      await send({ ...token, seq: token.seq + 1, writtenAt: Date.now(), released: true });
      await drop(receipt);
    },
    async loadState() {
      return { ...(held?.token.state ?? {}) };
    },
    async saveState(epoch, entry, state) {
      if (!holds(epoch)) return false;
      const current = held!.token;
      if (await replace({ epoch, seq: current.seq + 1, state: { ...current.state, [entry]: state }, writtenAt: Date.now() })) return true;
      myEpoch = null;
      return false;
    },
    async close() {
      client.destroy();
    },
  };
}
