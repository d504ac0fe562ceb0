// Node module hooks that let the benchmark (plain Node 20, no type stripping) import the
// TypeScript helpers in test-support/ (private RabbitMQ, Redis, Python Celery), so the bench and
// the tests start brokers with the same code. TypeScript's own transpileModule turns each .ts file
// into JS as it loads (types dropped, nothing checked); a `./x.js` import that names a .ts file
// resolves to it, as TypeScript's NodeNext resolution does.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";

export async function resolve(specifier, context, next) {
  if (specifier.endsWith(".js") && context.parentURL?.endsWith(".ts") && (specifier.startsWith("./") || specifier.startsWith("../"))) {
    const tsUrl = new URL(specifier.replace(/\.js$/, ".ts"), context.parentURL);
    if (existsSync(fileURLToPath(tsUrl))) return { url: tsUrl.href, format: "module", shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.startsWith("file:") || !url.endsWith(".ts")) return next(url, context);
  const source = readFileSync(fileURLToPath(url), "utf8");
  const out = ts.transpileModule(source, {
    fileName: fileURLToPath(url),
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false, sourceMap: false },
  });
  return { format: "module", source: out.outputText, shortCircuit: true };
}
