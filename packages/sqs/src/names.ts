/** Python's `string.punctuation`. */
const PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/**
 * kombu's `entity_name`: an AMQP-style queue name as a legal SQS name. Dots become dashes, dashes
 * and underscores stay, every other punctuation character becomes an underscore; a trailing
 * `.fifo` is kept, since SQS needs it on FIFO queues.
 */
export function sqsEntityName(name: string): string {
  const fifo = name.endsWith(".fifo");
  const base = fifo ? name.slice(0, -".fifo".length) : name;
  let out = "";
  for (const ch of base) {
    if (ch === ".") out += "-";
    else if (ch === "-" || ch === "_") out += ch;
    else if (PUNCTUATION.includes(ch)) out += "_";
    else out += ch;
  }
  return fifo ? `${out}.fifo` : out;
}

/** kombu's `canonical_queue_name`: prefix, then `entity_name` over the whole. */
export function sqsQueueName(prefix: string, queue: string): string {
  return sqsEntityName(prefix + queue);
}

export const isFifoQueue = (name: string): boolean => name.endsWith(".fifo");
