"""pytest set-up: import `vhostlab` from the build tree.

Run with the build's package on the path, e.g.
    PYTHONPATH=build/pybind /usr/bin/python3 -m pytest pybind/tests
Without PYTHONPATH, build/pybind (or $VHOSTLAB_BUILD_DIR/pybind) under the repository is used.
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _add_build_tree() -> None:
    try:
        import vhostlab  # noqa: F401
        return
    except ImportError:
        pass
    build = Path(os.environ.get("VHOSTLAB_BUILD_DIR", REPO / "build"))
    sys.path.insert(0, str(build / "pybind"))


_add_build_tree()
