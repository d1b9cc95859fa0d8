"""Startup: ``treefork validate`` on a workflow file, imports included (target: under 0.5 s).

The figure is the wall time of the whole ``treefork validate FILE`` process (interpreter
start, imports, loading and checking the file, printing), median of ``--runs`` runs after
one warm-up. The peer is the least a hand-written LangGraph program pays before it can
even build its graph: ``python -c "from langgraph.graph import StateGraph"``.

    .venv/bin/python benchmarks/startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from common import PYTHON, WORK, Row, print_rows, table, write_section

TARGET = 0.5

WORKFLOW = """\
name: checkout-overhaul
task: "Fix the login redirect and the refund rounding"
max_parallel: 8
budget:
  tokens: 2000000
  cost: 25.5
env:
  REPORT_DIR: reports
domains:
  auth:
    description: Sign-in, sessions and tokens
    keywords: [login, session, token]
    paths: ["src/auth/**"]
    critical: true
    setup:
      - shell: ls src/auth/*.py | jq -R -s 'split("\\n") | map(select(length > 0))' > files.json
    map:
      input: files.json
      filter: "item matches '\\\\.py$'"
      max_parallel: 4
      agent_template:
        - claude: "/review ${item}"
          capture: review
        - shell: echo "${review}" > "${REPORT_DIR}/$(basename ${item}).md"
        - shell: git add -A && git commit -qm review
          commit_required: true
    reduce:
      - shell: echo "${map.successful}/${map.total} files reviewed"
    tests: pytest tests/auth -q
    on_worktree_create: npm ci
    worktree_include: [".env"]
  payments:
    keywords: [refund, invoice]
    paths: ["src/payments/**"]
    map:
      input: "python scripts/list_payment_modules.py"
      sort_by: "priority DESC NULLS LAST, name"
      isolation: none
      agent_template:
        - claude: "/audit ${item.module}"
"""


def _treefork() -> str:
    return str(Path(PYTHON).with_name("treefork"))


def _wall(argv: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ))
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr}")
    return elapsed


def _median(argv: list[str], runs: int, label: str) -> float:
    _wall(argv)  # warm-up: the first run pays for cold file caches
    values = [_wall(argv) for _ in range(runs)]
    print(f"  {label}: " + " ".join(f"{value:.3f}" for value in values))
    return statistics.median(values)


def measure(runs: int) -> list[Row]:
    """Wall time of ``treefork validate`` and of importing LangGraph."""
    folder = WORK / "startup"
    folder.mkdir(parents=True, exist_ok=True)
    workflow = folder / "workflow.yml"
    workflow.write_text(WORKFLOW)
    ours = _median([_treefork(), "validate", str(workflow)], runs, "treefork validate s")
    peer = _median(
        [PYTHON, "-c", "from langgraph.graph import StateGraph"], runs, "import langgraph s"
    )
    bare = _median([PYTHON, "-c", "pass"], runs, "python -c pass s")
    return [
        Row(
            "`treefork validate` (2 domains)",
            f"{ours:.2f} s",
            f"{peer:.2f} s",
            f"{peer / ours:.1f}x",
            f"< {TARGET} s",
            ours < TARGET,
        ),
        Row("bare interpreter start", f"{bare:.3f} s", "-", "-", "-", None),
    ]


def main() -> None:
    """Measure, print, and write the README section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-readme", action="store_true")
    options = parser.parse_args()
    rows = measure(options.runs)
    print_rows(rows)
    if not options.no_readme:
        body = (
            "Wall time of the whole `treefork validate FILE` process (interpreter start, "
            "imports, loading and checking a two-domain workflow, printing), median of "
            f"{options.runs} runs after a warm-up. The peer figure is what a hand-written "
            "LangGraph program pays before it can build a graph: "
            '`python -c "from langgraph.graph import StateGraph"`. `validate` loads neither '
            "langgraph nor GitPython.\n\n" + table(rows)
        )
        write_section("startup", "Startup", body)


if __name__ == "__main__":
    main()
