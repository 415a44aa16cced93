"""Shared test set-up: everything runs offline (no hub look-ups)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

# The tests use tiny models: one thread avoids oversubscription when the 2 cores are shared.
torch.set_num_threads(1)

# The benchmark scripts (benchmarks/, not installed) are tested in tests/benchmarks.
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_ROOT = str(Path(__file__).resolve().parents[1])
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
