#!/usr/bin/env python
"""Run every benchmark in bench/ one after another (`make bench`); each prints its own table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["gcs_sync.py", "converge.py", "time_to_ready.py", "verify_load.py", "image_mirror.py"]

if __name__ == "__main__":
    failed = [b for b in BENCHES if subprocess.call([sys.executable, str(HERE / b), *sys.argv[1:]], cwd=HERE)]
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
