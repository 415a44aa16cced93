"""Resumable keep/drop jobs (``speechmapper_plugin.datatools.resumable``): what the data tools rely on
to survive an interruption and to report what they kept and dropped."""

import json
import os

import pytest

from speechmapper_plugin.datatools.resumable import ResumableJob, SettingsMismatchError

ITEMS = [{"ID": f"q{i}", "tgt": f"answer {i}"} for i in range(5)]


def _run(out, items, stop_after=None, settings=None):
    """Keep even items (two rows each), drop odd ones; optionally 'crash' after N items."""
    job = ResumableJob(out, "demo", settings or {"threshold": 0.85})
    for n, item in enumerate(job.pending(items)):
        if stop_after is not None and n == stop_after:
            return None
        index = int(item["ID"][1:])
        if index % 2:
            job.drop(item["ID"], "lid_mismatch", f"detected fr for {item['ID']}")
        else:
            job.keep(item["ID"], [dict(item, ID=f"{item['ID']}_{x}") for x in ("de", "it")])
    return job.finish(["ID", "tgt"], input_items=len(items))


def test_an_interrupted_job_resumes_and_gives_the_uninterrupted_output(tmp_path):
    whole = tmp_path / "whole.csv"
    report = _run(str(whole), ITEMS)
    assert report["kept"] == 3 and report["dropped"] == {"lid_mismatch": 2}
    assert report["output_rows"] == 6 and report["items"] == report["input_items"] == 5

    resumed = tmp_path / "resumed.csv"
    assert _run(str(resumed), ITEMS, stop_after=2) is None  # interrupted after 2 decisions
    done = ResumableJob(str(resumed), "demo", {"threshold": 0.85})
    assert [i["ID"] for i in done.pending(ITEMS)] == ["q2", "q3", "q4"]
    done._log.close()
    report2 = _run(str(resumed), ITEMS)
    assert resumed.read_text() == whole.read_text()
    assert {k: v for k, v in report2.items() if k != "output"} == {
        k: v for k, v in report.items() if k != "output"
    }
    assert (tmp_path / "resumed.dropped.tsv").read_text().splitlines() == [
        "q1\tlid_mismatch\tdetected fr for q1",
        "q3\tlid_mismatch\tdetected fr for q3",
    ]
    with open(tmp_path / "resumed.report.json", encoding="utf-8") as f:
        assert json.load(f)["dropped"] == {"lid_mismatch": 2}


def test_a_torn_last_line_is_ignored_and_the_item_redone(tmp_path):
    out = str(tmp_path / "out.csv")
    _run(out, ITEMS, stop_after=3)
    with open(f"{out}.progress.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "q3", "rows": [{"ID": "q3_d')  # killed in the middle of a write
    job = ResumableJob(out, "demo", {"threshold": 0.85})
    assert [i["ID"] for i in job.pending(ITEMS)] == ["q3", "q4"]
    with open(f"{out}.progress.jsonl", encoding="utf-8") as f:
        assert all(json.loads(line) for line in f)  # the torn line is gone


def test_resuming_with_other_settings_is_refused(tmp_path):
    out = str(tmp_path / "out.csv")
    _run(out, ITEMS, stop_after=2)
    with pytest.raises(SettingsMismatchError, match=r"differing: \['threshold'\].*another output"):
        ResumableJob(out, "demo", {"threshold": 0.9})
    assert os.path.isfile(f"{out}.progress.jsonl")  # nothing was lost


def test_an_item_is_decided_once(tmp_path):
    job = ResumableJob(str(tmp_path / "out.csv"), "demo", {})
    job.keep("q0", [{"ID": "q0", "tgt": "x"}])
    with pytest.raises(ValueError, match="'q0' was already decided"):
        job.drop("q0", "empty")
