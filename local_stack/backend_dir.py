"""Assemble a Triton backend directory holding the python backend and the CPU `fil` stand-in.

The python backend stays in site-packages (its stub finds the CUDA runtime through a relative
rpath); only libtriton_python.so is copied, because Triton refuses a backend library that
resolves outside the backend directory.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent


def assemble_backend_dir(dest, venv):
    dest, venv = Path(dest), Path(venv)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    triton = site / "pytriton" / "tritonserver"
    py_dir = dest / "python"
    py_dir.mkdir(parents=True, exist_ok=True)
    # Triton refuses a symlinked backend library ("escapes backend directory"): copy it.
    shutil.copy2(triton / "backends" / "python" / "libtriton_python.so", py_dir / "libtriton_python.so")
    for link, target in (("triton_python_backend_stub", triton / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"),
                         ("triton_python_backend_utils.py", triton / "backends" / "python" / "triton_python_backend_utils.py")):
        path = py_dir / link
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
    fil_dir = dest / "fil"
    fil_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / "fil_backend" / "model.py", fil_dir / "model.py")
    return {
        "LD_LIBRARY_PATH": f"{sysconfig.get_config_var('LIBDIR')}:{site / 'nvidia_pytriton.libs'}",
        # The stub embeds Python in isolated mode (PYTHONPATH is ignored) and finds its prefix by
        # looking up "python3" on PATH: the venv's interpreter first makes it use the venv's packages.
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
