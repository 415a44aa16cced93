"""Progress bars (speechmapper_plugin.utils.progress): count, rate and ETA on a terminal,
nothing in a log file; used by feature extraction, the data tools and decoding loops."""

import io
import os
import sys

import numpy as np
import soundfile

from speechmapper_plugin.datatools.resumable import ResumableJob
from speechmapper_plugin.features.extraction import extract_to_cache
from speechmapper_plugin.features.front_ends import FbankFrontend
from speechmapper_plugin.utils.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_shows_rate_and_eta_on_a_terminal_only():
    terminal, log = Terminal(), io.StringIO()
    assert list(progress_bar(range(3), desc="decode", unit="batch", file=terminal)) == [0, 1, 2]
    shown = terminal.getvalue()
    assert "decode" in shown and "3/3" in shown and "batch/s" in shown and "<" in shown
    list(progress_bar(range(3), desc="decode", file=log))
    assert log.getvalue() == ""  # CI logs stay clean
    list(progress_bar(range(3), desc="decode", file=Terminal(), enable=False))


def test_feature_extraction_and_data_tools_show_progress(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    wav = str(tmp_path / "a.wav")
    soundfile.write(wav, np.zeros(16000, dtype="float32"), 16000)
    items = [(f"u{i}", wav) for i in range(3)]
    extract_to_cache(FbankFrontend(), items, str(tmp_path / "cache"), {}, average=2)
    assert "features" in terminal.getvalue() and "3/3" in terminal.getvalue()

    job = ResumableJob(os.path.join(tmp_path, "out.csv"), "fluent_answers", {})
    for item in job.pending([{"ID": "a"}, {"ID": "b"}]):
        job.keep(item["ID"], [item])
    job.finish(["ID"])
    assert "fluent_answers" in terminal.getvalue() and "2/2" in terminal.getvalue()

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: no bar at all
    extract_to_cache(FbankFrontend(), items, str(tmp_path / "cache2"), {}, average=2)
    assert sys.stderr.getvalue() == ""
