from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_REAL = REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def shared_real() -> Path:
    if not SHARED_REAL.exists():
        pytest.skip(f"{SHARED_REAL} not present (tests read ../shared beside the repo)")
    return SHARED_REAL


@pytest.fixture(scope="session")
def tiny_simulated(tmp_path_factory) -> Path:
    """The tiny simulation (the shipped models' grid, variables and levels), made once."""
    from stmodel.simulation import generate

    return generate("tiny", tmp_path_factory.mktemp("tiny_simulated") / "tiny.nc", progress=False)
