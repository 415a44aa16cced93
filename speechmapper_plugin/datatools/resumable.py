"""Resumable row-by-row jobs over a manifest, with a kept/dropped report: what the IWSLT25
data tools (SQA re-synthesis, fluent answers, translation + COMET filter, unanswerable
examples) share.

A job reads input items, and for each one either *keeps* it (one or more output rows) or
*drops* it (a reason, e.g. ``lid_mismatch`` or ``comet_below_0.85``). Every decision is
appended to ``<output>.progress.jsonl`` and flushed at once (synced to disk at least every
``SYNC_SECONDS``, not per item: a job of 100K items would otherwise spend minutes in fsync on
a network file system), so an interrupted job
(crash, pre-emption, Ctrl-C) restarts where it stopped: ``pending`` only yields the items
without a decision. ``finish`` then writes, atomically:

- ``<output>``: the kept rows as a manifest CSV, in the order the items were decided;
- ``<output stem>.dropped.tsv``: ``id <tab> reason <tab> detail``, one line per dropped item;
- ``<output stem>.report.json``: the tool, its settings, the counts of kept and dropped items
  (by reason) and of output rows.

The first line of the progress log records the job's settings; resuming with other settings
(another model, threshold, seed...) is refused with a message saying what differs, because the
output would mix two configurations.

Authors
-------
speechmapper developers, 2026
"""

import collections
import json
import logging
import os
import time

from speechmapper_plugin.data.manifests import write_csv
from speechmapper_plugin.utils.files import atomic_write_text, write_json
from speechmapper_plugin.utils.progress import progress_bar

logger = logging.getLogger(__name__)


#: Longest time (seconds) between two syncs of the progress log to disk. A crashed process
#: loses no decision (each is flushed); a crashed machine at most this much work.
SYNC_SECONDS = 1.0


class SettingsMismatchError(ValueError):
    """An interrupted job is resumed with settings that differ from those it started with."""


def _stem(path):
    root, ext = os.path.splitext(path)
    return root if ext.lower() in (".csv", ".tsv", ".json", ".jsonl") else path


class ResumableJob:
    """Keep/drop decisions per item, logged as they are made, so a job resumes after a crash.

    Arguments
    ---------
    output : str
        The output manifest (CSV) the job writes at the end.
    tool : str
        Name of the tool (recorded in the log and the report).
    settings : dict
        JSON-serializable settings that determine the output (model, threshold, seed...).

    Example
    -------
    >>> import tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "fluent.csv")
    >>> items = [{"ID": "q1", "tgt": "Paris"}, {"ID": "q2", "tgt": "1889"}]
    >>> job = ResumableJob(out, "demo", {"threshold": 0.5})
    >>> for item in job.pending(items):
    ...     if item["ID"] == "q1":
    ...         job.keep(item["ID"], [dict(item, tgt="It is Paris.")])
    ...         break  # interrupted here
    >>> job = ResumableJob(out, "demo", {"threshold": 0.5})  # a new process resumes
    >>> [item["ID"] for item in job.pending(items)]
    ['q2']
    >>> job.drop("q2", "lid_mismatch", "detected fr")
    >>> report = job.finish(["ID", "tgt"])
    >>> report["kept"], report["dropped"]
    (1, {'lid_mismatch': 1})
    >>> open(out).read().splitlines()
    ['ID,tgt', 'q1,It is Paris.']
    """

    def __init__(self, output, tool, settings):
        self.output = output
        self.tool = tool
        self.settings = json.loads(json.dumps(settings))  # normalize (tuples -> lists)
        self.progress_path = f"{output}.progress.jsonl"
        self.report_path = f"{_stem(output)}.report.json"
        self.dropped_path = f"{_stem(output)}.dropped.tsv"
        self.decisions = collections.OrderedDict()  # id -> {"rows": [...]} or {"reason": ...}
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        self._read_progress()
        self._log = open(self.progress_path, "a", encoding="utf-8")
        self._synced = float("-inf")
        self._bar = None
        if self._new:
            self._append({"tool": tool, "settings": self.settings})

    def _read_progress(self):
        self._new = not os.path.isfile(self.progress_path)
        if self._new:
            return
        with open(self.progress_path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        complete, torn = lines[:-1], lines[-1]  # a crash can leave a torn last line
        if torn:
            logger.warning("%s: ignoring a torn last line (interrupted write)", self.progress_path)
            atomic_write_text(self.progress_path, "".join(line + "\n" for line in complete))
        if not complete:
            self._new = True
            return
        header = json.loads(complete[0])
        if header.get("tool") != self.tool or header.get("settings") != self.settings:
            diff = sorted(
                key
                for key in set(header.get("settings", {})) | set(self.settings)
                if header.get("settings", {}).get(key) != self.settings.get(key)
            )
            raise SettingsMismatchError(
                f"{self.progress_path} holds an interrupted {header.get('tool')!r} job started "
                f"with other settings (differing: {diff or ['tool']}; before: "
                f"{header.get('settings')}, now: {self.settings}). Resume it with the same "
                "settings, or write to another output (or delete that file to start over)."
            )
        for line in complete[1:]:
            entry = json.loads(line)
            self.decisions[entry.pop("id")] = entry
        logger.info(
            "%s: resuming, %d items already done (%s)",
            self.tool,
            len(self.decisions),
            self.progress_path,
        )

    def _append(self, entry):
        self._log.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._log.flush()
        now = time.monotonic()
        if now - self._synced >= SYNC_SECONDS:
            os.fsync(self._log.fileno())
            self._synced = now

    def done(self, item_id):
        """Whether ``item_id`` already has a decision."""
        return str(item_id) in self.decisions

    def pending(self, items, key="ID"):
        """The items (dicts) without a decision yet, in order; a progress bar (rate, ETA,
        kept / dropped counts) follows the decisions on a terminal."""
        total = len(items) if hasattr(items, "__len__") else None
        already = sum(1 for item in items if self.done(item[key])) if total is not None else 0
        self._bar = progress_bar(total=total, initial=already, desc=self.tool, unit="item")
        for item in items:
            if not self.done(item[key]):
                yield item

    def keep(self, item_id, rows):
        """Record that ``item_id`` produced the output ``rows`` (a list of dicts)."""
        self._decide(item_id, {"rows": list(rows)})

    def drop(self, item_id, reason, detail=""):
        """Record that ``item_id`` is left out for ``reason`` (``detail``: score, language...)."""
        logger.info("%s: dropped %s (%s) %s", self.tool, item_id, reason, detail)
        self._decide(item_id, {"reason": str(reason), "detail": str(detail)})

    def _decide(self, item_id, decision):
        item_id = str(item_id)
        if item_id in self.decisions:
            raise ValueError(f"{self.tool}: item {item_id!r} was already decided.")
        self.decisions[item_id] = decision
        self._append({"id": item_id, **decision})
        if self._bar is not None:
            self._bar.update(1)

    def finish(self, fieldnames, input_items=None):
        """Write the output manifest, the dropped list and the report; returns the report.

        Arguments
        ---------
        fieldnames : list of str
            Columns of the output manifest.
        input_items : int, optional
            Number of input items (recorded; a mismatch with the decisions is logged).
        """
        os.fsync(self._log.fileno())
        self._log.close()
        if self._bar is not None:
            self._bar.close()
        rows = [r for d in self.decisions.values() for r in d.get("rows", ())]
        write_csv(self.output, rows, fieldnames)
        dropped = [
            (i, d["reason"], d["detail"]) for i, d in self.decisions.items() if "reason" in d
        ]
        atomic_write_text(self.dropped_path, "".join(f"{i}\t{r}\t{x}\n" for i, r, x in dropped))
        report = {
            "tool": self.tool,
            "settings": self.settings,
            "output": os.path.abspath(self.output),
            "items": len(self.decisions),
            "kept": len(self.decisions) - len(dropped),
            "dropped": dict(collections.Counter(r for _, r, _ in dropped)),
            "output_rows": len(rows),
        }
        if input_items is not None:
            report["input_items"] = input_items
            if input_items != len(self.decisions):
                logger.warning(
                    "%s: %d input items but %d decisions", self.tool, input_items, report["items"]
                )
        write_json(self.report_path, report)
        logger.info(
            "%s: kept %d, dropped %d %s -> %s",
            self.tool,
            report["kept"],
            len(dropped),
            report["dropped"],
            self.output,
        )
        return report
