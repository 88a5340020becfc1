"""Finds and imports the compiled extension ark._C.

`pip install .` puts _C next to this file. In a source checkout it stays in the CMake build folder
(<build>/python/ark/_C*.so): the package path is extended to that folder so a rebuild needs no install step.
Search order: $ARK_BUILD_DIR (an engineer's own build folder), this folder, then <repo>/build.
"""

import os
import pathlib

from . import __path__ as _package_path

_REPO = pathlib.Path(__file__).resolve().parents[2]


def _extension_dirs():
    env = os.environ.get("ARK_BUILD_DIR")
    first = [pathlib.Path(env) / "python" / "ark"] if env else []
    return first, [_REPO / "build" / "python" / "ark"]


def _load():
    first, last = _extension_dirs()
    for d in reversed(first):
        if d.is_dir():
            _package_path.insert(0, str(d))
    for d in last:
        if d.is_dir() and str(d) not in _package_path:
            _package_path.append(str(d))
    try:
        from . import _C as module
    except ImportError as e:
        raise ImportError(
            "ark._C (the compiled extension) was not found in "
            f"{list(_package_path)}: run `bash scripts/setup.sh`, or build it with "
            "`cmake --build <dir> --target ark_python` and set ARK_BUILD_DIR=<dir>"
        ) from e
    return module


_C = _load()
