"""Helpers with no dependency on the rest of the package: atomic file writes (``files``),
hparams loading, override checks and device resolution (``hparams``), UTF-8 text files read
line by line (``textfiles``), MMS-style text normalization (``text``), imports that keep the
logging set-up (``imports``), one job per folder (``locks``), the checks that a checkpoint
folder is complete (``checkpoints``) and progress bars (``progress``)."""

from speechmapper_plugin.utils.files import atomic_write_text, write_json
from speechmapper_plugin.utils.hparams import load_hparams, resolve_device
from speechmapper_plugin.utils.text import normalize_text

__all__ = ["atomic_write_text", "write_json", "load_hparams", "resolve_device", "normalize_text"]
