"""Helpers shared by the tests of ``speechmapper_plugin.features``."""

import numpy as np
import torch

LOGGER = "speechmapper_plugin.features"


def _noise(n, seed):
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype("float32")


def _two_waves():
    # 5160 samples = 30 fbank frames (even), so no half-padded stacked frame in the reference.
    a, b = torch.from_numpy(_noise(8000, 5)), torch.from_numpy(_noise(5160, 6))
    wavs = torch.zeros(2, 8000)
    wavs[0], wavs[1, :5160] = a, b
    return wavs, torch.tensor([1.0, 5160 / 8000]), [a, b]
