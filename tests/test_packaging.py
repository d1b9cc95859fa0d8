"""The wheel: state.py and nodes/ ship as treefork.state and treefork.nodes, nothing top-level."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installs_state_and_nodes_inside_the_package(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next(dist.glob("treefork-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "treefork/state.py" in names
    assert "treefork/nodes/__init__.py" in names
    assert "treefork/_demo/sample-project/src/calc/ops.py" in names
    assert not any(name.startswith(("state.py", "nodes/")) for name in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The fresh environment borrows the dependencies from the test environment (appended
    # after its own site-packages, so treefork itself comes only from the wheel).
    own = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    borrowed = [entry for entry in sys.path if entry.endswith("site-packages")]
    Path(own, "borrowed-deps.pth").write_text("\n".join(borrowed) + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
    )
    probe = (
        "import importlib.util, treefork, treefork.state, treefork.nodes;"
        "assert treefork.state.ParallelState is treefork.ParallelState;"
        "assert importlib.util.find_spec('state') is None, 'top-level state module';"
        "assert importlib.util.find_spec('nodes') is None, 'top-level nodes package';"
        "print(treefork.__file__)"
    )
    out = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, check=True, capture_output=True, text=True
    )
    assert str(venv) in out.stdout
