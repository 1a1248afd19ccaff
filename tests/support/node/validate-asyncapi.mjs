// Validate an AsyncAPI document with the reference parser; print its diagnostics as JSON lines.
// Usage: node validate-asyncapi.mjs FILE. Exit 0 when valid (no errors), 1 otherwise.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: file });
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
// severity 0 is an error in Spectral's DiagnosticSeverity.
const errors = diagnostics.filter((d) => d.severity === 0);
if (document) console.log(JSON.stringify({ version: document.version(), channels: document.channels().length, operations: document.operations().length }));
process.exit(document && errors.length === 0 ? 0 : 1);
