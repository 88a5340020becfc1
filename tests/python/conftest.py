import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
# The ark program under test: $ARK_BIN (an engineer's own build), else the README build folder.
ARK_BIN = pathlib.Path(os.environ.get("ARK_BIN", REPO / "build" / "ark"))
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ark_bin():
    if not ARK_BIN.exists():
        pytest.fail(f"{ARK_BIN} is missing: build first (bash scripts/setup.sh)")
    return str(ARK_BIN)
