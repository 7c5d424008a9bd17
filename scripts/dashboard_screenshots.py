"""Regenerate ``docs/img/dashboard_*.png``: the dashboard's browser test with screenshots on.

Runs ``tests/integration/test_dashboard_browser.py`` (a seeded store, the embedded broker,
``streamlit run`` and Debian's headless chromium), which saves each page it checks.

    .venv/bin/python scripts/dashboard_screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    env = {
        **os.environ,
        "FRAUDSTREAM_DASHBOARD_SCREENSHOTS": str(ROOT / "docs" / "img"),
        "FRAUDSTREAM_DASHBOARD_SEED": "180000,50",  # an hour at 50 tx/s
    }
    test = ROOT / "tests" / "integration" / "test_dashboard_browser.py"
    done = subprocess.run([sys.executable, "-m", "pytest", str(test), "-q"], env=env, cwd=ROOT)
    raise SystemExit(done.returncode)


if __name__ == "__main__":
    main()
