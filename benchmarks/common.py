"""What every benchmark shares: test repositories, the machine, timing and the README.

The test repositories are generated here (files of about 4 KB in folders of 100), committed
once, packed, and cached under ``benchmarks/.work/repos``; :func:`fresh_repository` puts one
back to its first commit (no other branch, no worktree, no object left from earlier runs)
before every measured run, so runs do not see each other's work.
Automatic ``git gc`` is off in these repositories, for both sides: a background repack
starting in the middle of one run and not another would only add noise.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
DEFAULT_WORK = BENCHMARKS / ".work"
WORK = Path(os.environ.get("TREEFORK_BENCH_WORK") or DEFAULT_WORK).resolve()
"""Where repositories and treefork homes go (``TREEFORK_BENCH_WORK`` chooses another disk)."""
README = BENCHMARKS / "README.md"
PYTHON = sys.executable
STARTED_LOAD = os.getloadavg()[0]
"""The machine's 1-minute load average when the benchmark started."""

FILE_SIZE = 4096
FILES_PER_FOLDER = 100
BASE_TAG = "bench-v2"
IDENTITY = ("-c", "user.name=Bench", "-c", "user.email=bench@localhost")


def run_git(cwd: Path, *args: str) -> str:
    """Run git with a clean environment; raise on failure."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {cwd} failed: {result.stderr}")
    return result.stdout


# --- repositories ----------------------------------------------------------------------------


def _file_text(index: int) -> str:
    seed = hashlib.sha256(str(index).encode()).hexdigest()
    line = f"{index:06d} {seed}\n"
    return (line * (FILE_SIZE // len(line) + 1))[:FILE_SIZE]


def _generate(path: Path, files: int) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    run_git(path, "init", "-q", "-b", "main")
    run_git(path, "config", "user.name", "Bench")
    run_git(path, "config", "user.email", "bench@localhost")
    run_git(path, "config", "gc.auto", "0")
    for index in range(files):
        target = path / "src" / f"d{index // FILES_PER_FOLDER:03d}" / f"f{index:05d}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_file_text(index))
    (path / ".gitignore").write_text("node_modules/\n")
    run_git(path, "add", "-A")
    run_git(path, "commit", "-q", "-m", f"{files} files")
    run_git(path, "tag", BASE_TAG)
    run_git(path, "gc", "-q")


def repository(files: int) -> Path:
    """The cached test repository with ``files`` files, generated on first use."""
    path = WORK / "repos" / f"files-{files}"
    try:
        run_git(path, "rev-parse", "--verify", "-q", f"refs/tags/{BASE_TAG}")
    except (RuntimeError, FileNotFoundError, NotADirectoryError):
        started = time.perf_counter()
        _generate(path, files)
        print(f"  generated a {files}-file repository in {time.perf_counter() - started:.1f}s")
    return path


def fresh_repository(files: int) -> Path:
    """The test repository back at its first commit: no other branch, no worktree."""
    path = repository(files)
    for folder in ("home", "peer"):
        shutil.rmtree(WORK / folder, ignore_errors=True)
    run_git(path, "checkout", "-q", "-f", "main")
    run_git(path, "reset", "-q", "--hard", BASE_TAG)
    run_git(path, "clean", "-q", "-ffdx")
    run_git(path, "worktree", "prune")
    refs = run_git(path, "for-each-ref", "--format=delete %(refname)", "refs/heads/")
    deletions = "".join(
        f"{line}\n" for line in refs.splitlines() if line != "delete refs/heads/main"
    )
    if deletions:
        subprocess.run(
            ["git", "update-ref", "--stdin"], cwd=path, input=deletions, text=True, check=True
        )
    run_git(path, "reflog", "expire", "--expire=now", "--all")
    run_git(path, "prune", "--expire=now")
    return path


def filesystem(path: Path) -> str:
    """The kind of filesystem ``path`` lies on ("ext4 without a journal", "tmpfs"; Linux)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown filesystem"
    best: tuple[str, str, str] | None = None
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        device, point, kind = fields[0], fields[1], fields[2]
        inside = point in ("/", resolved) or resolved.startswith(point + "/")
        if inside and (best is None or len(point) >= len(best[1])):
            best = (device, point, kind)
    if best is None:
        return "unknown filesystem"
    device, _, kind = best
    if kind == "ext4":
        journals = Path("/proc/fs/jbd2")
        name = Path(device).name
        journaled = journals.is_dir() and any(
            entry.name.startswith(f"{name}-") for entry in journals.iterdir()
        )
        return "ext4" if journaled else "ext4 without a journal"
    return kind


# --- measuring -------------------------------------------------------------------------------


def median_of(runs: int, measure: Callable[[], float], label: str) -> float:
    """The median of ``runs`` measurements, each printed as it comes."""
    values = []
    for run in range(1, runs + 1):
        value = measure()
        values.append(value)
        print(f"  {label} run {run}/{runs}: {value:.3f}")
    return statistics.median(values)


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# --- the machine and the README ----------------------------------------------------------------


def machine() -> str:
    """Cores, memory, OS, git and Python versions, in one line."""
    memory = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        match = re.search(r"MemTotal:\s+(\d+) kB", meminfo.read_text())
        if match:
            memory = f"{int(match.group(1)) / 2**20:.1f} GiB"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        if match:
            cpu = match.group(1).strip()
    git_version = run_git(Path.cwd(), "--version").strip().removeprefix("git version ")
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory} memory, {platform.system()} "
        f"{platform.release()}, git {git_version}, Python {platform.python_version()}"
    )


@dataclass(frozen=True)
class Row:
    """One line of a results table."""

    measure: str
    treefork: str
    peer: str
    ratio: str
    target: str
    met: bool | None


def table(rows: Sequence[Row]) -> str:
    """A markdown table of results."""
    lines = [
        "| measure | treefork | peer | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = "n/a" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(
            f"| {row.measure} | {row.treefork} | {row.peer} | {row.ratio} | {row.target} | {met} |"
        )
    return "\n".join(lines)


def print_rows(rows: Sequence[Row]) -> None:
    """The results on the terminal."""
    for row in rows:
        met = "" if row.met is None else ("  OK" if row.met else "  MISSED")
        print(
            f"{row.measure}: treefork {row.treefork}, peer {row.peer}, ratio {row.ratio} "
            f"(target {row.target}){met}"
        )


_HEADER = """# Benchmarks

Each script measures one target of the performance work against the *peer*: what a LangGraph
user writes by hand (`peer.py`): a `Send` fan-out whose agents each run
`git worktree add -b`, do the work, commit, `git merge --no-ff` into a parent worktree and
`git worktree remove`, with one `asyncio.Lock` around the git calls. Both sides run in the
same process run, on the same generated repositories (files of about 4 KB), and every figure
is the median of at least 3 runs. Each script rewrites its own section below.

```
.venv/bin/python benchmarks/isolation.py    # git cost per agent, 2,000 and 20,000 files
.venv/bin/python benchmarks/efficiency.py   # 200 items x 0.2 s at max_parallel 8
.venv/bin/python benchmarks/scale.py        # 2,000 worktree items; 10,000 read-only items
.venv/bin/python benchmarks/startup.py      # treefork validate, imports included
.venv/bin/python benchmarks/run_all.py      # all of them
```

Generated repositories and the treefork home live in `benchmarks/.work/` (ignored by git);
`TREEFORK_BENCH_WORK=/dev/shm/treefork-bench` puts them elsewhere, and the sections measured
there are written separately, named after the filesystem.
"""


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or add) the section ``name`` of the README, stamped with the machine."""
    text = README.read_text() if README.exists() else _HEADER
    stamp = time.strftime("%Y-%m-%d")
    load = f"load average {STARTED_LOAD:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    disk = filesystem(WORK)
    if WORK != DEFAULT_WORK:  # a second location gets its own section
        name, title = f"{name}-{disk.split()[0]}", f"{title}, work folder on {disk}"
    section = (
        f"<!-- {name}:start -->\n## {title}\n\nMeasured {stamp} on {machine()}; {load}; "
        f"repositories and treefork homes on {disk}.\n\n{body.strip()}\n<!-- {name}:end -->"
    )
    pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    README.write_text(text)
    print(f"  wrote the {name} section of {README}")
