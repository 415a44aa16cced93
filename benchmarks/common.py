"""Helpers shared by the benchmark parts: devices, timing, peak memory, configs, reports.

Authors
-------
speechmapper developers, 2026
"""

import contextlib
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from speechmapper_plugin.utils.files import atomic_write_text

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_DOC = REPO_ROOT / "docs" / "benchmarks.md"
FEATURE_RATE = 25.0  # SFM vectors per second (SeamlessM4T 50 Hz, averaged by two)
LIBRISPEECH_HOURS = 960.0
MAX_GRAD_NORM = 5.0  # hparams/stage1.yaml and stage2.yaml

# Tiny dimensions for the smoke mode (finishes in seconds on a laptop CPU).
TINY_PROJECTOR = dict(
    input_dim=32, block_dims=(32, 48), output_dims=(48, 64), num_layers=1, nhead=4
)
TINY_LLM = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=512,
)


def load_llm_config(name_or_path, overrides=None):
    """A ``transformers`` config from a file of ``benchmarks/configs`` or a JSON path.

    Arguments
    ---------
    name_or_path : str
        ``llama-3.1-8b-instruct``, ``eurollm-9b-instruct`` or the path of a config.json.
    overrides : dict, optional
        Fields replaced after loading (the tiny mode shrinks the model this way).

    Returns
    -------
    transformers.PretrainedConfig
        The config.

    Example
    -------
    >>> cfg = load_llm_config("llama-3.1-8b-instruct")
    >>> cfg.hidden_size, cfg.vocab_size, cfg.num_key_value_heads
    (4096, 128256, 8)
    """
    from transformers import AutoConfig

    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise FileNotFoundError(
            f"--llm-config {name_or_path!r} is neither a file nor one of {known} in {CONFIG_DIR}."
        )
    try:
        fields = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(fields, dict) or "model_type" not in fields:
        raise ValueError(
            f"{path} must be a Hugging Face config.json object with a 'model_type' key."
        )
    fields.update(overrides or {})
    return AutoConfig.for_model(**fields)


def describe_device(device):
    """Human-readable description of the device (GPU name and memory, or CPU model).

    Arguments
    ---------
    device : torch.device
        The device.

    Returns
    -------
    str
        The description.

    Example
    -------
    >>> describe_device(torch.device("cpu")).startswith("CPU")
    True
    """
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"GPU {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _current_rss():
    """Resident set size of this process in bytes (Linux ``/proc``; else the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakMemory:
    """Peak memory of a code section: CUDA peak allocation, or sampled peak RSS on CPU.

    On GPU the CUDA peak statistics are reset on entry and ``torch.cuda.max_memory_allocated``
    (absolute: weights, optimizer states, activations) is read on exit. On CPU a thread samples
    the process RSS every ``interval`` seconds; ``peak`` is the highest RSS seen and ``delta``
    its increase over the RSS on entry (what the section itself allocated).

    Arguments
    ---------
    device : torch.device
        The device whose memory is followed.
    interval : float
        CPU sampling period in seconds.

    Example
    -------
    >>> with PeakMemory(torch.device("cpu")) as mem:
    ...     x = torch.ones(4 * 2**20)
    >>> mem.peak >= mem.start
    True
    """

    def __init__(self, device, interval=0.005):
        self.device = device
        self.interval = interval
        self.start = self.peak = self.reserved = 0
        self._stop = threading.Event()
        self._thread = None

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _current_rss())
            self._stop.wait(self.interval)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            self.start = self.peak = _current_rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            self.reserved = torch.cuda.max_memory_reserved(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _current_rss())
        return False

    @property
    def delta(self):
        """Peak minus the memory in use on entry (bytes)."""
        return self.peak - self.start

    def describe(self):
        """One line for the results table."""
        if self.device.type == "cuda":
            return (
                f"{_gib(self.peak)} allocated (torch.cuda.max_memory_allocated), "
                f"{_gib(self.reserved)} reserved"
            )
        return f"{_gib(self.delta)} RSS increase (peak RSS {_gib(self.peak)}, sampled)"


def _gib(num_bytes):
    return f"{num_bytes / 2**30:.2f} GiB"


def format_duration(seconds):
    """Seconds as a short human duration.

    Arguments
    ---------
    seconds : float
        The duration.

    Returns
    -------
    str
        E.g. ``"2.50 s"``, ``"3.2 min"``, ``"4.1 h"``, ``"2.5 days"``.

    Example
    -------
    >>> format_duration(2.5), format_duration(192), format_duration(14760), format_duration(216000)
    ('2.50 s', '3.2 min', '4.1 h', '2.5 days')
    """
    if seconds < 100:
        return f"{seconds:.2f} s"
    if seconds < 3600 * 1.5:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def summarize(times):
    """Mean, min and standard deviation of measured times (seconds).

    Arguments
    ---------
    times : list of float
        Per-step times.

    Returns
    -------
    dict
        ``mean``, ``min``, ``std``, ``n``.

    Example
    -------
    >>> summarize([1.0, 2.0, 3.0])
    {'mean': 2.0, 'min': 1.0, 'std': 1.0, 'n': 3}
    """
    return {
        "mean": statistics.fmean(times),
        "min": min(times),
        "std": statistics.stdev(times) if len(times) > 1 else 0.0,
        "n": len(times),
    }


def _timing_text(stats, warmup):
    return (
        f"{stats['mean']:.3f} s (mean of {stats['n']} after {warmup} warm-up; "
        f"min {stats['min']:.3f}, std {stats['std']:.3f})"
    )


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device, precision):
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )


def _free(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def random_token_ids(num_utts, num_tokens, vocab, generator, exclude=2):
    """Random target token ids below ``vocab - exclude`` (the last ids are pad / end of turn).

    Arguments
    ---------
    num_utts : int
        Number of utterances.
    num_tokens : int
        Tokens per utterance.
    vocab : int
        Vocabulary size.
    generator : torch.Generator
        Random generator.
    exclude : int
        Number of top ids never drawn.

    Returns
    -------
    list of list of int
        The ids.

    Example
    -------
    >>> ids = random_token_ids(2, 3, 10, torch.Generator().manual_seed(0))
    >>> len(ids), len(ids[0]), max(max(row) for row in ids) < 8
    (2, 3, True)
    """
    high = vocab - exclude
    if high < 1:
        raise ValueError(f"Vocabulary of {vocab} ids is too small (need > {exclude}).")
    return torch.randint(0, high, (num_utts, num_tokens), generator=generator).tolist()


def time_steps(fn, device, steps, warmup):
    """Runs ``fn`` ``warmup`` times untimed, then ``steps`` times timed (device synchronized).

    Arguments
    ---------
    fn : callable
        The step (no arguments); its return value is ignored.
    device : torch.device
        Synchronized before and after every timed call.
    steps, warmup : int
        Timed and untimed calls.

    Returns
    -------
    list of float
        Seconds per timed call.

    Example
    -------
    >>> len(time_steps(lambda: None, torch.device("cpu"), steps=3, warmup=1))
    3
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------- report


def markdown_table(rows):
    """Rows of (name, value) as a two-column Markdown table.

    Arguments
    ---------
    rows : list of tuple
        (name, value) pairs.

    Returns
    -------
    str
        The table.

    Example
    -------
    >>> print(markdown_table([("a", "1"), ("b", "x|y")]))
    | Quantity | Value |
    |---|---|
    | a | 1 |
    | b | x\\|y |
    """
    lines = ["| Quantity | Value |", "|---|---|"]
    for name, value in rows:
        lines.append(f"| {name} | {str(value).replace('|', chr(92) + '|')} |")
    return "\n".join(lines)


def append_report(path, command, date, table):
    """Append a dated result section to a Markdown file (atomically).

    Arguments
    ---------
    path : str or Path
        The Markdown file (created with a title if missing).
    command : str
        The exact command line.
    date : str
        The run date.
    table : str
        The Markdown table.

    Example
    -------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "b.md"
    >>> append_report(f, "python x.py", "2026-01-01", "| a | b |")
    >>> "`python x.py`" in f.read_text()
    True
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    if not text.endswith("\n"):
        text += "\n"
    text += f"\n### Run of {date}\n\nCommand: `{command}`\n\n{table}\n"
    atomic_write_text(str(path), text)


@contextlib.contextmanager
def work_folder(path=None):
    """A folder for a run's synthetic files: ``path`` (created, kept) or a temporary one.

    Arguments
    ---------
    path : str, optional
        A folder to use and keep; None for a temporary folder removed on exit.

    Yields
    ------
    pathlib.Path
        The folder.

    Example
    -------
    >>> with work_folder() as folder:
    ...     folder.is_dir()
    True
    >>> folder.exists()
    False
    """
    if path is not None:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="speechmapper-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def utterance_durations(count, mean_seconds, seed):
    """Utterance durations drawn uniformly within +-50% of ``mean_seconds`` (seeded).

    Arguments
    ---------
    count : int
        Number of utterances.
    mean_seconds : float
        Mean duration (LibriSpeech-960: 12.3 s).
    seed : int
        Random seed.

    Returns
    -------
    list of float
        Durations in seconds, rounded to the 40-ms feature frame.

    Example
    -------
    >>> d = utterance_durations(1000, 12.3, seed=0)
    >>> min(d) >= 6.15 and max(d) <= 18.45 and abs(sum(d) / len(d) - 12.3) < 0.3
    True
    """
    gen = torch.Generator().manual_seed(seed)
    draws = torch.rand(count, generator=gen, dtype=torch.float64) + 0.5
    return [round(float(x) * mean_seconds / 0.04) * 0.04 for x in draws]
