import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";

// ---- data ----------------------------------------------------------------------------------

interface Worker {
  hostname: string;
  language: string;
  alive: boolean;
  pid: number | null;
  concurrency: number | null;
  processed: number;
  succeeded: number;
  failed: number;
  active: number;
  loadavg: number[] | null;
  lastHeartbeat: number | null;
  heartbeats: number[];
  sw_ident: string | null;
  sw_ver: string | null;
  registered: string[] | null;
  activeTasks: { id: string; name: string }[] | null;
  reserved: { id: string; name: string }[] | null;
  queues: string[] | null;
}
interface Queue {
  name: string;
  messages: number | null;
  consumers: number | null;
  exists: boolean;
}
interface Overview {
  broker: { transport: string; events: boolean };
  readOnly: boolean;
  workers: Worker[];
  queues: Queue[];
  counts: Record<string, number>;
  taskCount: number;
  maxTasks: number;
  evicted: number;
  taskTypes: string[];
  states: string[];
  throughput: { t: number[]; succeeded: number[]; failed: number[] };
}
interface Task {
  uuid: string;
  name: string | null;
  state: string;
  args: string | null;
  kwargs: string | null;
  result: string | null;
  exception: string | null;
  traceback: string | null;
  runtime: number | null;
  retries: number | null;
  worker: string | null;
  received: number | null;
  started: number | null;
  timestamp: number;
  root_id: string | null;
  parent_id: string | null;
  eta: string | null;
  expires: string | null;
  timeline?: { type: string; timestamp: number; hostname: string }[];
  children?: { uuid: string; name: string | null; state: string }[];
  /** From the result backend, when the dashboard has one. */
  stored?: { state?: string; result?: unknown; error?: string } | null;
}

// A token given as ?token=... on the page's URL is passed on to every API call.
const token = new URLSearchParams(location.search).get("token");
function api(path: string): string {
  return token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
}
async function getJson<T>(path: string): Promise<T> {
  const r = await fetch(api(path));
  if (!r.ok) throw new Error(`${r.status} ${(await r.json().catch(() => ({ error: r.statusText }))).error}`);
  return (await r.json()) as T;
}
async function post<T>(path: string): Promise<T> {
  const r = await fetch(api(path), { method: "POST" });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error ?? String(r.status));
  return body as T;
}

/** Bumps when the server says something changed (SSE), so views refetch what they show. */
function useLiveVersion(): number {
  const [v, setV] = useState(0);
  useEffect(() => {
    const es = new EventSource(api("/ui-api/stream"));
    es.addEventListener("update", () => setV((x) => x + 1));
    return () => es.close();
  }, []);
  return v;
}

function useData<T>(path: string | null, version: number): { data: T | null; error: string | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (path === null) return;
    let live = true;
    getJson<T>(path).then(
      (d) => live && (setData(d), setError(null)),
      (e: Error) => live && setError(e.message),
    );
    return () => {
      live = false;
    };
  }, [path, version]);
  return { data, error };
}

function useHash(): string {
  const [h, setH] = useState(location.hash || "#/");
  useEffect(() => {
    const on = () => setH(location.hash || "#/");
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return h;
}

/**
 * What a failure says: the exception, or, when Celery sent a wrapper (`ExceptionWithTraceback()`
 * from its pool), the last line of the traceback, which names the real one.
 */
function failureText(t: Task): string {
  const last = t.traceback?.trim().split("\n").pop() ?? "";
  return !t.exception || /^ExceptionWithTraceback\(/.test(t.exception) ? last || (t.exception ?? "") : t.exception;
}

const time = (s: number | null) => (s === null ? "" : new Date(s * 1000).toISOString().replace("T", " ").slice(0, 23));
const ago = (s: number | null) => (s === null ? "never" : `${Math.max(0, Math.round(Date.now() / 1000 - s))} s ago`);

// ---- pieces ----------------------------------------------------------------------------------

function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state.toLowerCase()}`}>{state}</span>;
}

function Replies({ result }: { result: { replies?: Record<string, unknown>; note?: string; error?: string } | null }) {
  if (!result) return null;
  if (result.error)
    return (
      <div class="replies error" data-testid="action-result">
        Failed: {result.error}
      </div>
    );
  const entries = Object.entries(result.replies ?? {});
  return (
    <div class="replies" data-testid="action-result">
      {entries.length === 0 ? <div>{result.note ?? "No worker replied."}</div> : null}
      {entries.map(([host, reply]) => (
        <div key={host}>
          <b>{host}</b>: <code>{JSON.stringify(reply)}</code>
        </div>
      ))}
    </div>
  );
}

/** Runs a remote-control action after the user confirms, and shows the workers' replies. */
function useAction(page: string): [(question: string, path: string) => Promise<void>, { replies?: Record<string, unknown>; error?: string } | null] {
  const [result, setResult] = useState<{ replies?: Record<string, unknown>; error?: string } | null>(null);
  // Replies belong to the page the action was taken on.
  useEffect(() => setResult(null), [page]);
  const run = async (question: string, path: string) => {
    if (!confirm(question)) return;
    try {
      setResult(await post(path));
    } catch (e) {
      setResult({ error: (e as Error).message });
    }
  };
  return [run, result];
}

function ThroughputChart({ tp }: { tp: Overview["throughput"] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!box.current) return;
    plot.current = new uPlot(
      {
        width: Math.max(320, box.current.clientWidth),
        height: 200,
        scales: { x: { time: true } },
        axes: [{}, { label: "tasks/s" }],
        series: [
          {},
          { label: "succeeded", stroke: "#2e8b57", fill: "rgba(46,139,87,0.15)", width: 2 },
          { label: "failed", stroke: "#c0392b", fill: "rgba(192,57,43,0.15)", width: 2 },
        ],
      },
      [[], [], []],
      box.current,
    );
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => {
    plot.current?.setData([tp.t, tp.succeeded, tp.failed]);
  }, [tp]);
  return <div class="chart" ref={box} data-testid="throughput-chart" />;
}

// ---- pages -----------------------------------------------------------------------------------

function WorkersPage({ o, act }: { o: Overview; act: (q: string, p: string) => Promise<void> }) {
  return (
    <section>
      <h2>Workers</h2>
      <table data-testid="workers">
        <thead>
          <tr>
            <th>Worker</th>
            <th>Status</th>
            <th>Language</th>
            <th>PID</th>
            <th>Concurrency</th>
            <th>Processed</th>
            <th>Succeeded</th>
            <th>Failed</th>
            <th>Active</th>
            <th>Reserved</th>
            <th>Load</th>
            <th>Heartbeat</th>
            <th>Queues</th>
            <th>Registered tasks</th>
            {o.readOnly ? null : <th />}
          </tr>
        </thead>
        <tbody>
          {o.workers.map((w) => (
            <tr key={w.hostname} data-worker={w.hostname}>
              <td>{w.hostname}</td>
              <td>
                <span class={`badge ${w.alive ? "online" : "offline"}`}>{w.alive ? "online" : "offline"}</span>
              </td>
              <td>{w.language}</td>
              <td>{w.pid ?? ""}</td>
              <td>{w.concurrency ?? ""}</td>
              <td>{w.processed}</td>
              <td>{w.succeeded}</td>
              <td>{w.failed}</td>
              <td title={(w.activeTasks ?? []).map((t) => `${t.name} ${t.id}`).join("\n")}>{w.activeTasks?.length ?? w.active}</td>
              <td title={(w.reserved ?? []).map((t) => `${t.name} ${t.id}`).join("\n")}>{w.reserved?.length ?? ""}</td>
              <td>{w.loadavg?.join(", ") ?? ""}</td>
              <td>{ago(w.lastHeartbeat)}</td>
              <td>{(w.queues ?? []).join(", ")}</td>
              <td class="small">{(w.registered ?? []).join(", ")}</td>
              {o.readOnly ? null : (
                <td>
                  <button
                    class="danger"
                    onClick={() =>
                      void act(`Shut down ${w.hostname}? It finishes its running tasks and stops.`, `/ui-api/shutdown/${encodeURIComponent(w.hostname)}`)
                    }
                  >
                    Shut down
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {o.workers.length === 0 ? <p class="muted">No worker seen yet. Start workers with -E (celery worker -E, celeriac worker -E) to send events.</p> : null}
    </section>
  );
}

const PAGE = 50;

function TasksPage({ o, version }: { o: Overview; version: number }) {
  const [f, setF] = useState({ state: "", name: "", worker: "", search: "", from: "", to: "" });
  const [offset, setOffset] = useState(0);
  const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
  if (f.state) q.set("state", f.state);
  if (f.name) q.set("name", f.name);
  if (f.worker) q.set("worker", f.worker);
  if (f.search) q.set("search", f.search);
  if (f.from) q.set("received_start", String(Date.parse(f.from) / 1000));
  if (f.to) q.set("received_end", String(Date.parse(f.to) / 1000));
  const { data, error } = useData<{ total: number; tasks: Task[] }>(`/ui-api/tasks?${q}`, version);
  const set = (k: keyof typeof f) => (e: Event) => {
    setF({ ...f, [k]: (e.target as HTMLInputElement).value });
    setOffset(0);
  };
  return (
    <section>
      <h2>Tasks</h2>
      <div class="filters">
        <select value={f.state} onChange={set("state")} aria-label="state">
          <option value="">any state</option>
          {o.states.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <select value={f.name} onChange={set("name")} aria-label="task name">
          <option value="">any task</option>
          {o.taskTypes.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <select value={f.worker} onChange={set("worker")} aria-label="worker">
          <option value="">any worker</option>
          {o.workers.map((w) => (
            <option key={w.hostname}>{w.hostname}</option>
          ))}
        </select>
        <label>
          from <input type="datetime-local" value={f.from} onChange={set("from")} />
        </label>
        <label>
          to <input type="datetime-local" value={f.to} onChange={set("to")} />
        </label>
        <input type="search" placeholder="search id or args" value={f.search} onInput={set("search")} aria-label="search" />
      </div>
      {error ? <p class="error">{error}</p> : null}
      <table data-testid="tasks">
        <thead>
          <tr>
            <th>Task</th>
            <th>Id</th>
            <th>State</th>
            <th>Args</th>
            <th>Kwargs</th>
            <th>Result</th>
            <th>Received</th>
            <th>Runtime</th>
            <th>Worker</th>
          </tr>
        </thead>
        <tbody>
          {(data?.tasks ?? []).map((t) => (
            <tr key={t.uuid} data-task={t.uuid}>
              <td>{t.name}</td>
              <td>
                <a href={`#/task/${t.uuid}`}>{t.uuid}</a>
              </td>
              <td>
                <StateBadge state={t.state} />
              </td>
              <td class="mono">{t.args}</td>
              <td class="mono">{t.kwargs}</td>
              <td class="mono">{t.state === "FAILURE" ? failureText(t) : t.result}</td>
              <td>{time(t.received)}</td>
              <td>{t.runtime === null ? "" : `${t.runtime.toFixed(3)} s`}</td>
              <td>{t.worker}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="pager">
        <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
          Newer
        </button>
        <span data-testid="task-total">{data ? `${data.total === 0 ? 0 : offset + 1}-${Math.min(offset + PAGE, data.total)} of ${data.total}` : ""}</span>
        <button disabled={!data || offset + PAGE >= data.total} onClick={() => setOffset(offset + PAGE)}>
          Older
        </button>
      </div>
    </section>
  );
}

function TaskPage({
  id,
  o,
  version,
  act,
  result,
}: {
  id: string;
  o: Overview;
  version: number;
  act: (q: string, p: string) => Promise<void>;
  result: Parameters<typeof Replies>[0]["result"];
}) {
  const { data: t, error } = useData<Task>(`/ui-api/task/${encodeURIComponent(id)}`, version);
  const [limit, setLimit] = useState("10/s");
  if (error) return <p class="error">{error}</p>;
  if (!t) return <p>Loading...</p>;
  const row = (k: string, v: unknown) => (
    <tr>
      <th>{k}</th>
      <td class="mono">{v === null || v === undefined ? "" : String(v)}</td>
    </tr>
  );
  const link = (x: string | null) => (x ? <a href={`#/task/${x}`}>{x}</a> : "");
  return (
    <section data-testid="task-detail">
      <h2>
        {t.name} <StateBadge state={t.state} />
      </h2>
      <table class="kv">
        <tbody>
          {row("id", t.uuid)}
          {row("worker", t.worker)}
          {row("args", t.args)}
          {row("kwargs", t.kwargs)}
          {row(t.state === "FAILURE" ? "exception" : "result", t.state === "FAILURE" ? failureText(t) : t.result)}
          {t.stored
            ? row("stored result", t.stored.error ? `(backend: ${t.stored.error})` : `${t.stored.state}: ${JSON.stringify(t.stored.result ?? null)}`)
            : null}
          {row("runtime", t.runtime === null ? null : `${t.runtime} s`)}
          {row("retries", t.retries)}
          {row("eta", t.eta)}
          {row("expires", t.expires)}
          <tr>
            <th>parent</th>
            <td>{link(t.parent_id)}</td>
          </tr>
          <tr>
            <th>root</th>
            <td>{link(t.root_id)}</td>
          </tr>
          <tr>
            <th>children</th>
            <td>
              {(t.children ?? []).map((c) => (
                <div key={c.uuid}>
                  {link(c.uuid)} {c.name} <StateBadge state={c.state} />
                </div>
              ))}
            </td>
          </tr>
        </tbody>
      </table>
      {t.traceback ? (
        <>
          <h3>Traceback</h3>
          <pre data-testid="traceback">{t.traceback}</pre>
        </>
      ) : null}
      <h3>Timeline</h3>
      <table data-testid="timeline">
        <tbody>
          {(t.timeline ?? []).map((e, i) => (
            <tr key={i}>
              <td>{time(e.timestamp)}</td>
              <td>{e.type}</td>
              <td>{e.hostname}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {o.readOnly ? (
        <p class="muted">Read-only: actions are disabled.</p>
      ) : (
        <div class="actions">
          <button class="danger" onClick={() => void act(`Revoke task ${t.uuid}? Workers will not run it.`, `/ui-api/revoke/${t.uuid}`)}>
            Revoke
          </button>
          <button
            class="danger"
            onClick={() => void act(`Revoke and terminate task ${t.uuid}? A running task is stopped.`, `/ui-api/revoke/${t.uuid}?terminate=1`)}
          >
            Terminate
          </button>
          {t.name ? (
            <span>
              <input value={limit} onInput={(e) => setLimit((e.target as HTMLInputElement).value)} size={6} aria-label="rate limit" />
              <button
                onClick={() =>
                  void act(
                    `Set the rate limit of ${t.name} to ${limit} on every worker?`,
                    `/ui-api/rate-limit/${encodeURIComponent(t.name!)}?limit=${encodeURIComponent(limit)}`,
                  )
                }
              >
                Set rate limit
              </button>
            </span>
          ) : null}
        </div>
      )}
      <Replies result={result} />
    </section>
  );
}

function QueuesPage({ o }: { o: Overview }) {
  return (
    <section>
      <h2>Queues</h2>
      <table data-testid="queues">
        <thead>
          <tr>
            <th>Queue</th>
            <th>Messages waiting</th>
            <th>Consumers</th>
          </tr>
        </thead>
        <tbody>
          {o.queues.map((q) => (
            <tr key={q.name} data-queue={q.name}>
              <td>{q.name}</td>
              <td class="num">{q.messages ?? "?"}</td>
              <td class="num">{q.consumers ?? "?"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted">
        Depths read from the broker ({o.broker.transport}) at the last poll; consumers are RabbitMQ's own count, elsewhere the live workers that report
        consuming the queue.
      </p>
    </section>
  );
}

function App() {
  const version = useLiveVersion();
  const hash = useHash();
  const { data: o, error } = useData<Overview>("/ui-api/overview", version);
  const [act, result] = useAction(hash);
  if (!o) return <main>{error ? <p class="error">{error}</p> : <p>Loading...</p>}</main>;
  const page = hash.split("/")[1] ?? "";
  const nav = (h: string, label: string) => (
    <a href={h} class={hash === h || (h !== "#/" && hash.startsWith(h)) ? "active" : ""}>
      {label}
    </a>
  );
  const alive = o.workers.filter((w) => w.alive).length;
  return (
    <main>
      <header>
        <h1>Celeriac</h1>
        <nav>
          {nav("#/", "Workers")}
          {nav("#/tasks", "Tasks")}
          {nav("#/queues", "Queues")}
        </nav>
        <span class="muted">
          {o.broker.transport} · {alive}/{o.workers.length} workers online · {o.taskCount} tasks kept (cap {o.maxTasks}){o.readOnly ? " · read-only" : ""}
        </span>
      </header>
      {o.broker.events ? null : (
        <p class="notice" data-testid="no-events">
          The {o.broker.transport} broker has no exchanges, so workers cannot send Celery events or answer remote control here (Celery has neither on this
          broker). Only queue depths are shown.
        </p>
      )}
      <div class="summary">
        {Object.entries(o.counts).map(([s, n]) => (
          <span key={s}>
            <StateBadge state={s} /> {n}
          </span>
        ))}
      </div>
      <ThroughputChart tp={o.throughput} />
      {page === "tasks" ? <TasksPage o={o} version={version} /> : null}
      {page === "task" ? <TaskPage id={hash.split("/")[2] ?? ""} o={o} version={version} act={act} result={result} /> : null}
      {page === "queues" ? <QueuesPage o={o} /> : null}
      {page === "" ? (
        <>
          <WorkersPage o={o} act={act} />
          <Replies result={result} />
        </>
      ) : null}
    </main>
  );
}

render(<App />, document.getElementById("app")!);
