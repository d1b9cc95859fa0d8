"""A multi-domain treefork example over the sample project (examples/sample-project).

Three domains; a task picks the ones it mentions. Every map agent is a real shell command
that changes one file in its own worktree and commits it; the agents' work is merged into
the domain branch, then into the session branch, then (when approved) into your branch.

Run it on a scratch copy of the sample project::

    import asyncio
    from treefork import build_graph
    from multi_domain import DOMAINS, TASK

    graph = build_graph(DOMAINS, max_parallel=4, auto_approve=True)
    print(asyncio.run(graph.ainvoke({"task": TASK, "repo": "/path/to/copy"})))
"""

from __future__ import annotations

from treefork import Domain, Map, Shell

TASK = "Refresh the docs and document every module of the API in src/calc/"
"""The demo task: it mentions the docs and src/calc/, not the tests."""

_UNITTEST = "PYTHONPATH=src python3 -m unittest discover -s tests -q"

_LIST_PAGES = (
    "python3 - > pages.json <<'PY'\n"
    "import json, pathlib\n"
    "pages = sorted(pathlib.Path('docs').glob('*.md'))\n"
    "print(json.dumps([{'id': p.stem, 'path': str(p)} for p in pages]))\n"
    "PY"
)

DOMAINS = [
    Domain(
        "docs",
        keywords=["docs", "documentation"],
        paths=["docs/**"],
        description="Markdown documentation under docs/",
        # Setup lists the pages as work items (the file stays out of the commits).
        setup=[Shell(_LIST_PAGES)],
        map=Map(
            input="pages.json",
            agent=[
                Shell("sleep 0.4; printf '\\n_Reviewed for %s._\\n' '${item.id}' >> ${item.path}"),
                Shell(
                    "git add ${item.path} && git commit -q -m 'docs: review ${item.id}'",
                    commit_required=True,
                ),
            ],
            max_parallel=3,
        ),
        reduce=[Shell("grep -l 'Reviewed for' docs/*.md | wc -l")],
    ),
    Domain(
        "api",
        keywords=["api"],
        paths=["src/calc/**"],
        description="The calc package",
        map=Map(
            input="ls src/calc/*.py",
            agent=[
                Shell(
                    "sleep 0.4; python3 - ${item} <<'PY'\n"
                    "import sys, pathlib\n"
                    "path = pathlib.Path(sys.argv[1])\n"
                    "text = path.read_text()\n"
                    'if not text.startswith(\'"""\'):\n'
                    '    text = \'"""Module \' + path.stem + \' of calc."""\\n\\n\' + text\n'
                    "else:\n"
                    '    text = text.replace(\'"""\', \'"""(reviewed) \', 1)\n'
                    "path.write_text(text)\n"
                    "PY"
                ),
                Shell("git commit -q -am 'api: document ${item}'", commit_required=True),
            ],
            max_parallel=3,
        ),
        reduce=[Shell("python3 -m compileall -q src")],
        tests=_UNITTEST,
        critical=True,
    ),
    Domain(
        "tests",
        keywords=["tests", "testing"],
        paths=["tests/**"],
        description="Unit tests under tests/",
        map=Map(
            input=[{"id": "mul", "a": 3, "b": 4}, {"id": "div", "a": 8, "b": 2}],
            agent=[
                Shell(
                    "sleep 0.4; cat > tests/test_${item.id}.py <<'PY'\n"
                    "import unittest\n\n\n"
                    "class Test${item.id}(unittest.TestCase):\n"
                    "    def test_${item.id}(self):\n"
                    "        self.assertTrue(True)\n"
                    "PY"
                ),
                Shell(
                    "git add tests && git commit -q -m 'tests: ${item.id}'", commit_required=True
                ),
            ],
        ),
        tests=_UNITTEST,
    ),
]
"""The example's domains: docs, api (critical) and tests."""
