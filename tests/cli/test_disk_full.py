"""A full disk under the treefork home: one line naming the path and the space needed, exit 1,
and a job that ``treefork resume`` finishes once there is space.

The home is a small tmpfs that the test mounts (as root) and unmounts. Its size decides which
write finds the disk full first: the job store's schema, the job's first rows, an agent's
worktree, the checkpoints. Whichever it is, the outcome must be the same.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cliutil import TRACEBACK, environment, treefork
from gitutil import make_repo, run_git, worktree_paths

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="mounting a tmpfs needs root"
)

ITEMS = 12
WORKFLOW = f"""\
name: fill
mode: mapreduce
setup:
  - shell: "python3 -c 'import json; print(json.dumps(list(range({ITEMS}))))' > items.json"
map:
  input: items.json
  max_parallel: 3
  agent_template:
    - shell: "echo ${{item}} > f${{item}}.txt && git add f${{item}}.txt && git commit -qm 'item ${{item}}'"
"""
FULL = re.compile(
    r"^error: no space left on device at (?P<path>\S+) \((?P<free>[\d.]+ [KMG]?B) free; "
    r"free at least (?P<needed>[\d.]+ [KMG]?B) there\); then (?P<then>.*)$"
)


@pytest.fixture
def small_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    yield home
    subprocess.run(["umount", "-l", str(home)], check=False, capture_output=True)


def _mount(home: Path, size: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(home)], check=True)


def _grow(home: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=256m", str(home)], check=True)


@pytest.mark.parametrize("size", ["40k", "200k", "600k", "1200k"])
def test_a_full_home_stops_the_job_in_one_line_and_resume_finishes_it(
    tmp_path: Path, small_home: Path, size: str
) -> None:
    try:
        _mount(small_home, size)
    except subprocess.CalledProcessError:
        pytest.skip("tmpfs cannot be mounted here")
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    (tmp_path / "wf.yml").write_text(WORKFLOW, encoding="utf-8")
    env = environment(TREEFORK_HOME=str(small_home))
    before = run_git(repo, "rev-parse", "main")

    first = treefork("run", tmp_path / "wf.yml", "--repo", repo, "--yes", env=env, timeout=120)

    assert first.returncode == 1, first.stderr
    assert TRACEBACK not in first.stderr and "unexpected" not in first.stderr
    line = first.stderr.strip().splitlines()[-1]
    found = FULL.match(line)
    assert found, line
    assert Path(found["path"]).is_relative_to(small_home), line
    assert found["needed"] == "64.0 MB"
    assert run_git(repo, "rev-parse", "main") == before  # the user's branch is untouched

    _grow(small_home)
    resumed = re.search(r"`treefork resume (\S+)`", found["then"])
    if resumed:
        again = treefork("resume", resumed[1], "--yes", env=env, cwd=repo, timeout=120)
    else:
        assert found["then"] == "run it again (nothing of this job was recorded)"
        again = treefork("run", tmp_path / "wf.yml", "--repo", repo, "--yes", env=env, timeout=120)

    assert again.returncode == 0, again.stderr
    log = run_git(repo, "log", "--format=%s", "main")
    for item in range(ITEMS):
        assert log.splitlines().count(f"item {item}") == 1, log
        assert (repo / f"f{item}.txt").read_text() == f"{item}\n"
    jobs = treefork("jobs", env=env)
    assert jobs.returncode == 0 and jobs.stdout.count("fill") == 1, jobs.stdout
    gc = treefork("worktree", "gc", env=env, cwd=repo)
    assert gc.returncode == 0, gc.stderr
    assert worktree_paths(repo) == [repo]
