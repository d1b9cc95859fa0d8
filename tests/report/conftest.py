"""Headless Chromium (Debian's package) for looking at reports as a browser shows them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    # Nothing may be fetched: every host name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    # Let the page settle before the dump or the screenshot.
    "--virtual-time-budget=10000",
)

Browse = Callable[..., str]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Chromium, installed by scripts/ensure-chromium when missing (skips if it cannot be)."""
    script = REPOSITORY_ROOT / "scripts" / "ensure-chromium"
    result = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, check=False, timeout=900
    )
    if result.returncode != 0 or not CHROMIUM.exists():
        pytest.skip(f"headless Chromium is not available: {result.stderr.strip()[-500:]}")
    return CHROMIUM


@pytest.fixture
def browse(chromium: Path, tmp_path: Path) -> Browse:
    """``browse(page, *args)``: run headless Chromium on a local file; returns its stdout.

    Pass ``"--dump-dom"`` for the DOM after scripts ran, or ``f"--screenshot={png}"``.
    """
    profile = tmp_path / "chromium-profile"

    def run(page: Path, *args: str) -> str:
        command = [str(chromium), *_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=90)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    return run
