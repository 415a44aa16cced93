"""Progress bars for long jobs (feature extraction, the data tools, decoding loops), as
SpeechBrain shows them: ``tqdm`` with count, rate and ETA on a terminal, on the main process
only. Where the output is not a terminal (CI logs, ``nohup``, a file) the bar is silent, so
logs do not fill with carriage returns; ``TQDM_DISABLE=1`` silences it everywhere.

Authors
-------
speechmapper developers, 2026
"""


def _main_process():
    try:
        from speechbrain.utils.distributed import if_main_process
    except ImportError:  # pragma: no cover - speechbrain is a requirement
        return True
    return if_main_process()


def progress_bar(iterable=None, *, total=None, desc=None, unit="it", enable=True, **kwargs):
    """A ``tqdm`` bar that shows only on a terminal, on the main process.

    Arguments
    ---------
    iterable : iterable, optional
        What to iterate over (``None``: update the bar by hand).
    total : int, optional
        The number of steps (default: ``len(iterable)`` when it has one).
    desc : str, optional
        The bar's label, e.g. ``"features"``.
    unit : str
        What one step is (``"utt"``, ``"batch"``...).
    enable : bool
        False never shows the bar (e.g. SpeechBrain's ``--noprogressbar``).
    **kwargs
        Other ``tqdm`` arguments (``initial``, ``file``...).

    Returns
    -------
    tqdm.tqdm

    Example
    -------
    >>> import io
    >>> log = io.StringIO()  # not a terminal: nothing is written
    >>> sum(progress_bar(range(4), desc="items", file=log)), log.getvalue()
    (6, '')
    """
    from tqdm.auto import tqdm

    # disable=None: tqdm turns itself off when its output is not a terminal.
    disable = True if not enable or not _main_process() else None
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        disable=disable,
        **kwargs,
    )
