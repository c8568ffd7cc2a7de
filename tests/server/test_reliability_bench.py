"""bench/reliability.py --quick runs end to end against a real `scorekit serve` subprocess and exits 0: mixed
routes, a disconnect storm, over-limit requests and a large rerank beside small ones, all without a 5xx, a hang
or an ERROR in the server's log. The benchmark owns the checks; this test keeps it (and the server) honest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "reliability.py"


def test_the_quick_reliability_run_passes():
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-record"], capture_output=True, text=True,
                          timeout=240, env=env)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert "OK: no 5xx" in done.stdout
