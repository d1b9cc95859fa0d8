"""Prodigy's context variables at run time: ``${workflow.*}``, ``${worker.id}``,
``${step.*}``, ``${last.*}``, ``${env.NAME}``, ``${uuid}``, ``${map.success_rate}``."""

from __future__ import annotations

import re
from pathlib import Path

from cliutil import environment, treefork
from gitutil import make_repo

WORKFLOW = """\
name: context-vars
mode: mapreduce
setup:
  - shell: "echo setup-out"
  - name: record
    shell: 'echo "${last.output}|${last.exit_code}|${step.name}|${step.index}" > setup.txt'
map:
  input: items.json
  json_path: "$[*]"
  agent_template:
    - shell: >-
        echo "${item}|${workflow.name}|${worker.id}|${step.index}|${env.TF_PROBE}|${uuid}"
        > v-${item}.txt && git add . && git commit -qm v
    - shell: "exit 7"
      on_failure:
        shell: 'echo "handled ${last.exit_code}" >> v-${item}.txt && git commit -qam h'
reduce:
  - shell: >-
        echo "${workflow.name}|${worker.id}|${map.success_rate}|${workflow.iteration}"
        > reduce.txt && cat setup.txt >> reduce.txt && git add . && git commit -qm r
"""


def test_context_variables_have_their_documented_values(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"items.json": '["a", "b"]\n'})
    flow = tmp_path / "vars.yml"
    flow.write_text(WORKFLOW)

    finished = treefork(
        "run", flow, "--repo", repo, "--yes", "--json", env=environment(TF_PROBE="probe-7")
    )

    assert finished.returncode == 0, finished.stderr
    job = finished.report()["job_id"]
    lines = {name: (repo / f"v-{name}.txt").read_text().splitlines() for name in ("a", "b")}
    for index, name in enumerate(("a", "b")):
        item, workflow, worker, step, probe, uuid = lines[name][0].split("|")
        assert (item, workflow, worker, step, probe) == (
            name, "context-vars", f"context-vars/agent-{index}", "0", "probe-7"
        )  # fmt: skip
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", uuid)
        assert lines[name][1] == "handled 7"
    assert lines["a"][0].split("|")[5] != lines["b"][0].split("|")[5]
    reduce_line, setup_line = (repo / "reduce.txt").read_text().splitlines()
    assert reduce_line == "context-vars|context-vars/reduce|100.0|1"
    assert setup_line == "setup-out|0|record|1"
    assert job in treefork("events", job).stdout


def test_an_item_field_no_item_has_stops_the_map_before_any_agent_runs(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo", {"items.json": '[{"path": "a.md"}, {"path": "b.md", "size": 2}]\n'}
    )
    ran = tmp_path / "ran"
    flow = tmp_path / "typo.yml"
    flow.write_text(
        "name: typo\nmode: mapreduce\nmap:\n  input: items.json\n  json_path: '$[*]'\n"
        f"  agent_template:\n    - shell: 'touch {ran}; echo ${{item.pth}} ${{item.size}}'\n"
    )

    finished = treefork("run", flow, "--repo", repo, "--yes", "--json")

    assert finished.returncode == 1, finished.stderr
    (failure,) = finished.report()["failures"]
    assert failure["phase"] == "map" and failure["item"] is None
    assert "uses ${item.pth}, which no item has; did you mean ${item.path}? (their fields: " \
        "path, size)" in failure["error"]  # fmt: skip
    assert "item.size" not in failure["error"]  # one item has it: not a typo
    assert not ran.exists()
