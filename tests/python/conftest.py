import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
ARK_BIN = REPO / "build" / "ark"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ark_bin():
    if not ARK_BIN.exists():
        pytest.fail(f"{ARK_BIN} is missing: build first (bash scripts/setup.sh)")
    return str(ARK_BIN)
