"""Shared test settings: tiny models run fastest (and do not fight each other or DataLoader
workers for the 2 CI cores) on one intra-op thread."""
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (real split files, clips, reference layouts)."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} not found: the tests need ../shared beside the checkout")
    return SHARED
