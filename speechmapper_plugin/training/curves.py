"""Learning curves: training/validation figures appended to a JSON-lines file during training
and drawn as a PNG (matplotlib, no display needed).

Authors
-------
speechmapper developers, 2026
"""

import json
import os

from speechmapper_plugin.utils.files import atomic_write_text


class JsonLinesLog:
    """An append-only JSON-lines file of ``{"step": ...}`` records that survives restarts: a
    line cut by a crash is ignored (and the next record starts on a new line), and a resumed
    run first drops the records after its checkpoint's step (``truncate_after``).

    Arguments
    ---------
    path : str
        The ``.jsonl`` file.

    Example
    -------
    >>> import tempfile
    >>> log = JsonLinesLog(os.path.join(tempfile.mkdtemp(), "log.jsonl"))
    >>> for s in (10, 20, 30): log.append({"step": s})
    >>> log.truncate_after(20); [r["step"] for r in log.records()]
    [10, 20]
    """

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def append(self, record):
        """Append one record (a dict with a ``step``)."""
        torn = False
        if os.path.exists(self.path) and os.path.getsize(self.path):
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"  # a crash cut the last line: start a new one
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(("\n" if torn else "") + json.dumps(record) + "\n")
            f.flush()

    def records(self):
        """All records, in order (a torn last line from a crash is ignored)."""
        if not os.path.exists(self.path):
            return []
        out = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def truncate_after(self, step):
        """Drop the records of steps after ``step`` (rewritten atomically): a resumed run
        trains and logs those steps again."""
        records = self.records()
        kept = [r for r in records if r["step"] <= step]
        if len(kept) == len(records):
            return
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


class CurveLog(JsonLinesLog):
    """The learning curve: ``{"step": ..., "split": ..., <metric>: ...}`` records
    (a ``JsonLinesLog``); ``plot`` draws one panel per metric with one line per split.

    Arguments
    ---------
    path : str
        The ``.jsonl`` file.

    Example
    -------
    >>> import tempfile
    >>> log = CurveLog(os.path.join(tempfile.mkdtemp(), "curve.jsonl"))
    >>> log.add(10, "train", loss=2.0); log.add(20, "train", loss=1.0)
    >>> [r["loss"] for r in log.records()]
    [2.0, 1.0]
    """

    def add(self, step, split, **metrics):
        """Append one record (values converted to float)."""
        record = {"step": int(step), "split": split}
        record.update({k: float(v) for k, v in metrics.items()})
        self.append(record)

    def plot(self, png_path, metrics=None, title=None):
        """Draw the curves into ``png_path`` (written atomically); returns the path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = self.records()
        names = metrics or sorted({k for r in records for k in r if k not in ("step", "split")})
        if not names:
            return None
        ncols = min(4, len(names))
        nrows = -(-len(names) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.5 * nrows), squeeze=False)
        for ax in axes.flat[len(names) :]:
            ax.axis("off")
        for ax, name in zip(axes.flat, names):
            for split in sorted({r["split"] for r in records if name in r}):
                pts = [(r["step"], r[name]) for r in records if r["split"] == split and name in r]
                ax.plot(*zip(*pts), marker="o" if len(pts) < 30 else None, label=split)
            ax.set_xlabel("optimizer step")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        tmp = png_path + ".tmp.png"
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, png_path)
        return png_path
