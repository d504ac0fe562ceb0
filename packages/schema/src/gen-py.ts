import type { FieldModel, SchemaModel, TaskOptionsModel } from "./model.js";
import { banner, localNames, snakeCase, type GenerateContext } from "./names.js";

function pySingle(field: FieldModel, names: Map<string, string>): string {
  const t = field.type;
  switch (t.kind) {
    case "message":
    case "enum":
      return names.get(t.name) ?? "Any";
    case "timestamp":
      return "Timestamp";
    case "scalar":
      if (t.scalar === "double" || t.scalar === "float") return "float";
      if (t.scalar === "bool") return "bool";
      if (t.scalar === "string") return "str";
      if (t.scalar === "bytes") return "Base64";
      return "int";
  }
}

function pyType(field: FieldModel, names: Map<string, string>): string {
  const single = pySingle(field, names);
  if (field.label === "repeated") return `List[${single}]`;
  // JSON object keys are text, so a map<int32, V> arrives in Python with str keys.
  if (field.label === "map") return `Dict[str, ${single}]`;
  if (field.label === "optional") return `Optional[${single}]`;
  return single;
}

const PY_KEYWORDS = new Set([
  "False",
  "None",
  "True",
  "and",
  "as",
  "assert",
  "async",
  "await",
  "break",
  "class",
  "continue",
  "def",
  "del",
  "elif",
  "else",
  "except",
  "finally",
  "for",
  "from",
  "global",
  "if",
  "import",
  "in",
  "is",
  "lambda",
  "nonlocal",
  "not",
  "or",
  "pass",
  "raise",
  "return",
  "try",
  "while",
  "with",
  "yield",
]);

function celeryOptions(o: TaskOptionsModel): string[] {
  const out: string[] = [];
  if (o.queue !== undefined) out.push(`"queue": ${JSON.stringify(o.queue)}`);
  if (o.maxRetries !== undefined) out.push(`"max_retries": ${o.maxRetries}`);
  if (o.timeLimitMs !== undefined) out.push(`"time_limit": ${o.timeLimitMs / 1000}`);
  if (o.softTimeLimitMs !== undefined) out.push(`"soft_time_limit": ${o.softTimeLimitMs / 1000}`);
  if (o.priority !== undefined) out.push(`"priority": ${o.priority}`);
  if (o.ignoreResult !== undefined) out.push(`"ignore_result": ${o.ignoreResult ? "True" : "False"}`);
  if (o.defaultRetryDelayMs !== undefined) out.push(`"default_retry_delay": ${o.defaultRetryDelayMs / 1000}`);
  if (o.acksLate !== undefined) out.push(`"acks_late": ${o.acksLate ? "True" : "False"}`);
  return out;
}

/** The Python stub module: TypedDicts, a type-annotated stub per task and a signature checker. */
export function generatePython(schema: SchemaModel, ctx: GenerateContext): string {
  const names = localNames(schema);
  const o: string[] = [...banner(ctx, "#")];
  o.push(`"""Typed stubs of the Celery tasks declared in ${ctx.sources.join(", ")}.`);
  o.push("");
  o.push("Implement a task with the same name and keyword arguments, then check it against the schema:");
  o.push("");
  o.push('    @app.task(**task_options("<task name>"))');
  o.push("    def my_task(*, field: int) -> Result: ...");
  o.push("    check_task(my_task)");
  o.push("");
  o.push("Values as they travel in Celery JSON (kombu 5.2): 64-bit integers are plain ints, enums their");
  o.push("value names, google.protobuf.Timestamp ISO 8601 text (a task may return a datetime, which kombu");
  o.push("writes as ISO text), bytes base64 text, repeated fields lists, map fields dicts with str keys,");
  o.push("optional fields may be None or left out.");
  o.push('"""');
  o.push("from __future__ import annotations");
  o.push("");
  o.push("import inspect");
  o.push("import typing");
  o.push("from typing import Any, Callable, Dict, List, Literal, Optional, TypedDict");
  o.push("");
  o.push('#: google.protobuf.Timestamp: ISO 8601 text, e.g. "2026-01-02T03:04:05.000006+00:00".');
  o.push("Timestamp = str");
  o.push("#: bytes: base64 text (kombu 5.2 JSON cannot carry bytes).");
  o.push("Base64 = str");
  o.push("");
  for (const [full, e] of Object.entries(schema.enums)) {
    o.push(`#: Enum ${full}, by value name.`);
    o.push(
      `${names.get(full)} = Literal[${Object.keys(e.values)
        .map((v) => JSON.stringify(v))
        .join(", ")}]`,
    );
    o.push("");
  }
  for (const [full, m] of Object.entries(schema.messages)) {
    const name = names.get(full) ?? full;
    const required = m.fields.filter((f) => f.label !== "optional");
    const optional = m.fields.filter((f) => f.label === "optional");
    const line = (f: FieldModel) => `    ${f.name}: ${pyType(f, names)}`;
    o.push("");
    if (required.length > 0 && optional.length > 0) {
      o.push(`class _${name}Required(TypedDict):`);
      for (const f of required) o.push(line(f));
      o.push("", "");
      o.push(`class ${name}(_${name}Required, total=False):`);
      o.push(`    """Message ${full}."""`);
      for (const f of optional) o.push(line(f));
    } else {
      o.push(`class ${name}(TypedDict${required.length === 0 && optional.length > 0 ? ", total=False" : ""}):`);
      o.push(`    """Message ${full}."""`);
      for (const f of m.fields) o.push(line(f));
    }
    o.push("");
  }
  const stubs: [string, string][] = [];
  for (const task of schema.tasks) {
    let fn = snakeCase(task.method);
    if (PY_KEYWORDS.has(fn)) fn = `${fn}_`;
    stubs.push([task.name, fn]);
    const request = schema.messages[task.request]?.fields ?? [];
    const params = [
      ...request.filter((f) => f.label !== "optional").map((f) => `${f.name}: ${pyType(f, names)}`),
      ...request.filter((f) => f.label === "optional").map((f) => `${f.name}: ${pyType(f, names)} = None`),
    ];
    o.push("");
    o.push(`def ${fn}(${params.length > 0 ? `*, ${params.join(", ")}` : ""}) -> ${names.get(task.response)}:`);
    o.push(
      `    """Task ${JSON.stringify(task.name)} (${task.service}.${task.method}).${task.comment ? ` ${task.comment.replace(/\s+/g, " ").replace(/"""/g, "'''")}` : ""}"""`,
    );
    o.push("    raise NotImplementedError");
    o.push("");
  }
  o.push("");
  o.push("#: Task name -> stub.");
  o.push("TASKS: Dict[str, Callable[..., Any]] = {");
  for (const [name, fn] of stubs) o.push(`    ${JSON.stringify(name)}: ${fn},`);
  o.push("}");
  o.push("");
  o.push("#: Task name -> Celery task options declared in the schema (seconds, Celery's names).");
  o.push("TASK_OPTIONS: Dict[str, Dict[str, Any]] = {");
  for (const task of schema.tasks) o.push(`    ${JSON.stringify(task.name)}: {${celeryOptions(task.options).join(", ")}},`);
  o.push("}");
  o.push(PY_HELPERS);
  return o.join("\n") + "\n";
}

const PY_HELPERS = `

def task_options(name: str) -> Dict[str, Any]:
    """Keyword arguments for \`@app.task(**task_options(name))\`: the name and the declared options."""
    if name not in TASKS:
        raise KeyError(f"the schema declares no task {name!r}")
    return {"name": name, **TASK_OPTIONS[name]}


def _hints(fn: Callable[..., Any]) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception as exc:  # an annotation that does not resolve is a mismatch too
        raise TypeError(f"cannot resolve the annotations of {fn!r}: {exc}") from exc


def check_task(task: Any, name: Optional[str] = None) -> None:
    """Raises TypeError unless \`task\` (a Celery task or a function) matches the schema's stub.

    Checks the task name, that every schema field is accepted as a keyword argument, that the
    task requires no argument the schema does not have, that optional fields are optional, and
    that the annotations the task does give equal the schema's types.
    """
    name = name or getattr(task, "name", None)
    if name not in TASKS:
        raise TypeError(f"the schema declares no task {name!r}")
    stub = TASKS[name]
    # A Celery task's \`run\` is the function (a bound method for bind=True, so \`self\` is not listed).
    fn = getattr(task, "run", task)
    impl = inspect.signature(fn)
    spec = inspect.signature(stub)
    problems: List[str] = []
    params = dict(impl.parameters)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for pname, sp in spec.parameters.items():
        ip = params.get(pname)
        if ip is None:
            if not var_kw:
                problems.append(f"does not accept field {pname!r}")
            continue
        if ip.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            problems.append(f"{pname!r} cannot be passed by keyword")
        if sp.default is None and ip.default is inspect.Parameter.empty:
            problems.append(f"{pname!r} is optional in the schema but required by the task")
    for pname, ip in params.items():
        if ip.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if pname not in spec.parameters and ip.default is inspect.Parameter.empty:
            problems.append(f"requires {pname!r}, which the schema does not have")
    impl_hints = _hints(fn)
    spec_hints = _hints(stub)
    for pname, hint in impl_hints.items():
        key = pname if pname in spec_hints else None
        if key is None:
            continue
        if hint != spec_hints[key]:
            what = "returns" if pname == "return" else f"{pname!r} is"
            problems.append(f"{what} {hint!r} but the schema says {spec_hints[key]!r}")
    if problems:
        raise TypeError(f"task {name!r} does not match the schema: " + "; ".join(problems))


def check_app(app: Any, require_all: bool = True) -> None:
    """Checks every task of the schema registered on a Celery app; with require_all, all must be."""
    for name in TASKS:
        if name in app.tasks:
            check_task(app.tasks[name], name)
        elif require_all:
            raise TypeError(f"the app has no task {name!r} declared by the schema")`;
