// Parses every contracts/*/asyncapi.yaml with the reference AsyncAPI parser, resolving the
// relative $refs to the JSON Schema files, and exits 1 if any diagnostic is an error.
//
// Usage: node validate.mjs [contracts-dir-or-asyncapi-file ...]   (default: the contracts dir
// this script lives in)
import { readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';

const here = dirname(fileURLToPath(import.meta.url));
const SEVERITY = ['error', 'warning', 'information', 'hint'];

function documentsUnder(target) {
  if (statSync(target).isFile()) return [target];
  return readdirSync(target, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && entry.name !== 'tools' && entry.name !== 'node_modules')
    .map((entry) => join(target, entry.name, 'asyncapi.yaml'))
    .filter((file) => existsSync(file))
    .sort();
}

function where(diagnostic) {
  const start = diagnostic.range?.start;
  const line = start ? `:${start.line + 1}:${start.character + 1}` : '';
  const path = diagnostic.path?.length ? ` at ${diagnostic.path.join('.')}` : '';
  return `${line}${path}`;
}

const targets = process.argv.length > 2 ? process.argv.slice(2) : [resolve(here, '..')];
const files = targets.flatMap((t) => documentsUnder(resolve(t)));
if (files.length === 0) {
  console.error(`no asyncapi.yaml found under ${targets.join(', ')}`);
  process.exit(1);
}

const parser = new Parser();
let failed = false;
for (const file of files) {
  const shown = relative(process.cwd(), file) || file;
  const { document, diagnostics } = await fromFile(parser, file).parse();
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    // Errors always; warnings too, since they usually point at a real mistake.
    if (d.severity > DiagnosticSeverity.Warning) continue;
    // A diagnostic inside a $ref'd schema file names that file as its source.
    const source = d.source ? relative(process.cwd(), resolve(d.source)) : shown;
    console.error(`${source}${where(d)}: ${SEVERITY[d.severity]} [${d.code}] ${d.message}`);
  }
  if (errors.length > 0 || document === undefined) {
    failed = true;
    console.error(`${shown}: invalid (${errors.length} error(s))`);
  } else {
    console.log(`${shown}: ok (${document.messages().length} message(s))`);
  }
}
process.exit(failed ? 1 : 0);
