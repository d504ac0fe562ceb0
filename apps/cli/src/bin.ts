#!/usr/bin/env node
import { createRequire } from "node:module";
import { Command, Option } from "commander";
import { CeleriacError } from "@celeriac/core";

const program = new Command()
  .name("celeriac")
  .description("Celery-compatible task queue for TypeScript: run workers, send tasks, manage queues")
  .version((createRequire(import.meta.url)("../package.json") as { version: string }).version)
  // Celery's global -b: `celeriac -b URL worker` as `celery -b URL worker`.
  .addOption(new Option("-b, --broker <url>", "broker URL for every command (as each command's -b)").env("CELERIAC_BROKER_URL"));

/**
 * A command's options with the global ones under them (a command's own -b wins). Commands are
 * imported when run, so `celeriac --help` or `call` load nothing they do not use.
 */
const withGlobals = <T>(cmd: Command): T => {
  const opts = cmd.opts();
  // A -b given on the command line wins over CELERIAC_BROKER_URL, wherever it was written.
  if (cmd.getOptionValueSource("broker") !== "cli" && program.getOptionValueSource("broker") === "cli") opts["broker"] = program.opts()["broker"];
  return opts as T;
};

const broker = () => new Option("-b, --broker <url>", "broker URL (sqlite:///file.db, amqp://, redis://, sqs://)").env("CELERIAC_BROKER_URL");
/**
 * A queue declared elsewhere (Python's `task_queues`): declare it with the same arguments, as
 * kombu's `Queue(..., queue_arguments=...)` and Celery's `task_queue_max_priority`, or only check
 * that it exists. amqp:// brokers only.
 */
const queueDeclaration = (cmd: Command): Command =>
  cmd
    .addOption(
      new Option("--queue-arguments <json>", 'AMQP arguments of the queues, as kombu\'s queue_arguments, e.g. \'{"x-queue-type":"quorum"}\'').env(
        "CELERIAC_QUEUE_ARGUMENTS",
      ),
    )
    .addOption(new Option("--max-priority <n>", "declare the queues with x-max-priority n, as Celery's task_queue_max_priority").env("CELERIAC_MAX_PRIORITY"))
    .addOption(new Option("--passive-queues", "only check the queues exist (declared elsewhere); never create or change them").env("CELERIAC_PASSIVE_QUEUES"));

const backend = () =>
  new Option("--result-backend <url>", "result backend URL (sqlite:///, file:///dir, redis://, rpc://, none)").env("CELERIAC_RESULT_BACKEND");

const workerCmd = program
  .command("worker")
  .description("start a worker that runs the tasks registered by --tasks modules")
  .addOption(broker())
  .addOption(backend())
  .option("-t, --tasks <module...>", "module(s) whose default export registers task handlers", [])
  .option("-Q, --queues <list>", "comma-separated queues to consume", "celery")
  .option("-c, --concurrency <n>", "tasks run at once", "10")
  .option("--prefetch-multiplier <n>", "messages reserved per concurrency slot")
  .option("-n, --hostname <name>", "worker name, as in celery -n")
  .option("--shutdown-grace <seconds>", "time to finish tasks in flight on SIGTERM; a second SIGTERM/SIGINT hands them back at once", "30")
  .option("--broker-outage-limit <seconds>", "exit 1 when the broker stays unreachable this long (0: never give up)", "900")
  .option("-E, --events", "send Celery events (worker and task events on celeryev), like celery worker -E")
  .option("--without-remote-control", "do not answer celery inspect/control (Celery's worker_enable_remote_control = False)")
  .option("--metrics-port <port>", "serve Prometheus metrics at http://<metrics-host>:<port>/metrics (0: any free port)")
  .option("--metrics-host <host>", "interface for --metrics-port; 0.0.0.0 to let a scraper on another machine in", "127.0.0.1")
  .option("-l, --loglevel <level>", "DEBUG, INFO, WARNING, ERROR or CRITICAL, as in celery worker -l", "INFO")
  .option("--log-format <format>", "text (Celery's log lines) or json (one object per line); default: text on a terminal, else json")
  .option("-q, --quiet", "no log output");
queueDeclaration(workerCmd).action(async (_opts, cmd: Command) => (await import("./commands/worker.js")).workerCommand(withGlobals(cmd)));

program
  .command("beat")
  .description("send periodic tasks from a schedule, like `celery beat`; run several for high availability, one sends")
  .addOption(broker())
  .option("-s, --schedule <file>", "schedule: a .json file, or a module exporting defineSchedule(...)")
  .option("--max-interval <seconds>", "longest sleep between two looks at the schedule", "300")
  .option("--lease <seconds>", "leader lease: a dead leader is replaced within this plus a quarter of it", "10")
  .option("--name <name>", "replicas with the same name on the same broker elect one leader", "celery")
  .option("--dry-run [count]", "print the next fire times of each entry (default 5) and exit; nothing is sent")
  .option("--metrics-port <port>", "serve Prometheus metrics at http://<metrics-host>:<port>/metrics (0: any free port)")
  .option("--metrics-host <host>", "interface for --metrics-port", "127.0.0.1")
  .option("-q, --quiet", "no log output")
  .action(async (_opts, cmd: Command) => (await import("./commands/beat.js")).beatCommand(withGlobals(cmd)));

const callCmd = program
  .command("call")
  .description("send a task by name, like `celery call`")
  .argument("<name>", "registered task name, e.g. tasks.add")
  .addOption(broker())
  .addOption(backend())
  .option("-a, --args <json>", "positional arguments as a JSON array", "[]")
  .option("-k, --kwargs <json>", "keyword arguments as a JSON object", "{}")
  .option("-Q, --queue <name>", "queue to send to (default: celery)")
  .option("--countdown <seconds>", "run no sooner than this many seconds from now")
  .option("--eta <iso>", "run no sooner than this time")
  .option("--expires <seconds>", "revoke if not started within this many seconds")
  .option("--priority <0-9>", "higher runs first")
  .option("--task-id <id>", "use this task id")
  .option("-w, --wait", "wait for the result and print it as JSON")
  .option("--timeout <seconds>", "with --wait: give up after this long", "60");
queueDeclaration(callCmd).action(async (name: string, _opts, cmd: Command) => (await import("./commands/call.js")).callCommand(name, withGlobals(cmd)));

const purgeCmd = program
  .command("purge")
  .description("delete all waiting tasks from queues, like `celery purge`")
  .addOption(broker())
  .option("-Q, --queues <list>", "comma-separated queues", "celery")
  .option("-f, --force", "do not ask for confirmation");
queueDeclaration(purgeCmd).action(async (_opts, cmd: Command) => (await import("./commands/purge.js")).purgeCommand(withGlobals(cmd)));

program
  .command("demo")
  .description("run a producer and a worker on the embedded SQLite broker and print tasks and results")
  .option("--db <path>", "SQLite file to use (default: a fresh file in the temp directory)")
  .option("-n, --count <n>", "size of the batch of tasks sent at the end", "200")
  .action(async (opts) => (await import("./commands/demo.js")).demoCommand(opts));

program
  .command("codegen")
  .description("generate typed task handles (TypeScript), a Python stub and JSON Schemas from .proto task schemas")
  .argument("<files...>", ".proto files declaring tasks with celeriac.v1 options")
  .requiredOption("-o, --out <dir>", "output directory")
  .option("--name <name>", "base name of the outputs (default: the first file's name)")
  .option("-I, --proto-path <dir...>", "directories to search for imports")
  .option("-q, --quiet", "do not list the files written")
  .action(async (files: string[], opts) => (await import("./commands/codegen.js")).codegenCommand(files, opts));

program
  .command("schema")
  .description("task schema tools")
  .command("check")
  .description("report breaking changes between two versions of a task schema; exit code 1 if any")
  .argument("<old>", "old .proto file(s), comma-separated")
  .argument("<new>", "new .proto file(s), comma-separated")
  .option("-I, --proto-path <dir...>", "directories to search for imports")
  .option("--json", "print the report as JSON")
  .action(async (oldFiles: string, newFiles: string, opts) => (await import("./commands/schema.js")).schemaCheckCommand(oldFiles, newFiles, opts));

program
  .command("dashboard")
  .description("live web dashboard for Python and TypeScript workers, with Flower's HTTP API (needs @celeriac/dashboard)")
  .addOption(broker())
  .addOption(backend())
  .option("-p, --port <port>", "port to listen on (0: any free port)", "5555")
  .option("--address <host>", "interface to bind; anything but 127.0.0.1 needs --basic-auth or --auth-token", "127.0.0.1")
  .option("--basic-auth <user:password,...>", "HTTP basic auth, as flower --basic-auth")
  .addOption(new Option("--auth-token <token>", "bearer token (or ?token= on the page URL)").env("CELERIAC_DASHBOARD_TOKEN"))
  .option("--read-only", "disable revoke, rate limit, shutdown and task sending")
  .option("--max-tasks <n>", "tasks kept; the oldest finished ones are evicted beyond it", "100000")
  .option("--persist <file.db>", "keep task history in this SQLite file across restarts")
  .option("--inspect-interval <seconds>", "how often to ask the workers through remote control", "5")
  .option("-Q, --queues <list>", "comma-separated queues to show besides those workers report consuming", "celery")
  .action(async (_opts, cmd: Command) => (await import("./commands/dashboard.js")).dashboardCommand(withGlobals(cmd)));

// Remote control, as `celery inspect` / `celery control`: Celery's -d/-t/-j options.
const remote = (cmd: Command) =>
  cmd
    .addOption(broker())
    .option("-d, --destination <list>", "comma-separated worker hostnames (default: all)")
    .option("-t, --timeout <seconds>", "time to wait for the next reply", "1")
    .option("-j, --json", "print the replies as JSON");

remote(program.command("inspect").description("ask running workers (Python or TypeScript), like `celery inspect`"))
  .argument("<command>", "ping, stats, active, reserved, scheduled, registered, active_queues, clock, ...")
  .argument("[args...]", "task attribute names for registered")
  .action(async (method: string, args: string[], _opts, cmd: Command) =>
    (await import("./commands/inspect.js")).inspectCommand(method, args, withGlobals(cmd)),
  );

const control = program.command("control").description("control running workers, like `celery control`");
remote(control.command("revoke").description("workers will not run these tasks"))
  .argument("<ids...>", "task ids")
  .option("--terminate", "also stop them if running")
  .option("--signal <name>", "signal for --terminate on Python workers", "SIGTERM")
  .action(async (ids: string[], _opts, cmd: Command) => (await import("./commands/control.js")).controlRevokeCommand(ids, withGlobals(cmd)));
remote(control.command("shutdown").description("warm shutdown of the workers (they do not reply)")).action(async (_opts, cmd: Command) =>
  (await import("./commands/control.js")).controlShutdownCommand(withGlobals(cmd)),
);

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = CeleriacError.from(err);
  process.stderr.write(`celeriac: ${e.message}\n`);
  process.exitCode = e.code === "invalid_argument" ? 2 : 1;
});
