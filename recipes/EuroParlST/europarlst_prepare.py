"""EuroParl-ST v1.1 preparation (speech translation, English speech): SpeechBrain CSV manifests
from the official release layout (https://www.mllp.upv.es/europarl-st/).

Expected layout (``v1.1.tar.gz`` unpacked; it creates ``v1.1/``)::

    <data_folder>/v1.1/en/audios/<speech_id>.m4a          (whole speeches, not segmented)
    <data_folder>/v1.1/en/<tgt>/<set>/segments.lst        (<speech_id> <start> <end>, seconds)
    <data_folder>/v1.1/en/<tgt>/<set>/segments.en         (English transcript, one per segment)
    <data_folder>/v1.1/en/<tgt>/<set>/segments.<tgt>      (translation, one per segment)
    <data_folder>/v1.1/en/<tgt>/<set>/speeches.lst        (optional here: speaker ids)
    <data_folder>/v1.1/en/<tgt>/<set>/speakers.lst        (optional here: speaker ids)

``data_folder`` may be the folder holding ``v1.1/`` or the ``v1.1`` folder itself.

Verified against the dataset description and public readers of the release (fairseq's
``prep_europarlst_data.py`` and forks of it, which also list the ``train-noisy`` set; a reader
documenting the file formats): one folder per source language holding ``audios/`` (one ``.m4a``
per speech, named by its speech id such as ``en.20080924.31.3-243``) and one folder per target
language with ``train``/``train-noisy``/``dev``/``test`` sets. ``segments.lst`` lines are
``<speech_id> <start> <end>`` (space-separated, seconds) and line ``i`` of ``segments.en`` and
``segments.<tgt>`` is the transcript / translation of line ``i`` of ``segments.lst``.
``speeches.lst`` and ``speakers.lst`` are parallel (one speech id / one speaker per line); the
speaker is written as the last ``/``-separated part of its ``speakers.lst`` line (the exact
content of that line was not verified; ``spk_id`` is left empty when the files are absent).

Splits: ``<set>_en-<tgt>`` with ``<set>`` in ``train``, ``train-noisy``, ``dev``, ``test`` and
``<tgt>`` in ``de``, ``es``, ``fr``, ``it``, ``nl``, ``pl``, ``pt``, ``ro`` (the SpeechMapper
paper, Table 1, evaluates the test sets of en-es, en-fr, en-de and en-it).

Columns written (``<save_folder>/<split>.csv``): ``ID`` (``<speech_id>_<start ms>_<end ms>-<tgt>``,
times zero-padded to 7 digits: unique across language pairs, so the pairs can be trained
together), ``audio_id`` (``<speech_id>_<start ms>_<end ms>``: the same segment shares its cached
features in every language pair), ``duration`` (``end - start``), ``wav`` (absolute path of the
speech's ``.m4a``), ``start``/``stop`` (seconds in that file), ``spk_id``, ``wrd``
(MMS-normalized ``segments.en`` line, ``speechmapper_plugin.utils.text.normalize_text``),
``transcript`` (the ``segments.en`` line as released), ``tgt`` (the ``segments.<tgt>`` line),
``tgt_lang`` (``<tgt>``) and ``task`` (``st``). Segments whose speech audio is missing or not
readable (the m4a header is probed once per speech with PyAV), that end more than
``SEGMENT_TOLERANCE`` seconds after the end of their speech, malformed ``segments.lst`` lines,
lines that are not UTF-8 (in any of the three parallel files), duplicate segments, empty
transcripts or translations and segments longer than ``max_duration`` are skipped, counted and
listed in ``<save_folder>/<split>.skipped.tsv``. A segment that ends after its speech but within
``SEGMENT_TOLERANCE`` (alignment slack) is cut to the end of the audio: its ``stop`` and
``duration`` describe audio that exists (the ``ID`` keeps the released times); how many were
cut is logged. A ``segments.lst``
whose line count differs from that of ``segments.en`` / ``segments.<tgt>`` is a corrupt download:
``ValueError``.

Usage::

    python recipes/EuroParlST/europarlst_prepare.py /path/to/europarl-st \\
        results/europarlst/manifests test_en-es test_en-fr test_en-de test_en-it

Authors
-------
speechmapper developers, 2026
"""

import logging
import math
import os

from speechmapper_plugin.data.preparation import layout_error, prepare_cli, run_preparation
from speechmapper_plugin.utils.text import normalize_text
from speechmapper_plugin.utils.textfiles import decoded_lines, text_lines

logger = logging.getLogger(__name__)

DATASET = "EuroParl-ST"
VERSION = "v1.1"
SOURCE = "en"
TARGETS = ("de", "es", "fr", "it", "nl", "pl", "pt", "ro")
PAPER_TARGETS = ("es", "fr", "de", "it")
SETS = ("train", "train-noisy", "dev", "test")
SPLITS = tuple(f"{s}_{SOURCE}-{t}" for s in SETS for t in TARGETS)
# A segment may end this many seconds after the end of its speech (alignment slack); it is then
# cut to the end of the audio. Later ends are skipped (segment_beyond_audio).
SEGMENT_TOLERANCE = 0.5
EXPECTED_LAYOUT = (
    "<data_folder>/v1.1/en/<tgt>/<set>/segments.lst (lines '<speech_id> <start> <end>') with "
    "segments.en and segments.<tgt> next to it (one line per segment), and the speeches in "
    "<data_folder>/v1.1/en/audios/<speech_id>.m4a (data_folder may also be v1.1/ itself)"
)
HINT = (
    "Download EuroParl-ST v1.1 from https://www.mllp.upv.es/europarl-st/ "
    "(https://www.mllp.upv.es/europarl-st/v1.1.tar.gz) and unpack it: it creates v1.1/."
)


def parse_split(split):
    """``"test_en-de"`` -> ``("test", "de")``; a ``ValueError`` naming the valid splits else.

    Example
    -------
    >>> parse_split("train-noisy_en-fr")
    ('train-noisy', 'fr')
    """
    set_name, _, pair = split.rpartition("_")
    source, _, target = pair.partition("-")
    if set_name not in SETS or source != SOURCE or target not in TARGETS:
        raise ValueError(
            f"{DATASET}: unknown split {split!r}; valid splits are <set>_en-<tgt> with <set> in "
            f"{list(SETS)} and <tgt> in {list(TARGETS)} (the paper uses "
            f"{[f'test_en-{t}' for t in PAPER_TARGETS]})."
        )
    return set_name, target


def find_root(data_folder):
    """The ``v1.1`` folder (holding ``en/``) in or at ``data_folder``; ``layout_error`` else."""
    for root in (os.path.join(data_folder, VERSION), data_folder):
        if os.path.isdir(os.path.join(root, SOURCE)):
            return root
    hint = HINT
    if os.path.isdir(data_folder):
        others = sorted(
            d
            for d in os.listdir(data_folder)
            if d.startswith("v") and os.path.isdir(os.path.join(data_folder, d, SOURCE))
        )
        if others:
            hint = f"data_folder holds {others}, not {VERSION}: another release. " + HINT
    raise layout_error(DATASET, data_folder, EXPECTED_LAYOUT, hint)


def read_lines(path):
    """The lines of a metadata text file (``speeches.lst``, ``speakers.lst``), split on ``\n``
    only; a line that is not UTF-8 is an error naming the file and line."""
    return [line for _, line in text_lines(path)]


def speaker_map(folder):
    """``speech_id -> speaker`` from ``speeches.lst`` / ``speakers.lst`` ({} without them)."""
    speeches_file = os.path.join(folder, "speeches.lst")
    speakers_file = os.path.join(folder, "speakers.lst")
    if not (os.path.isfile(speeches_file) and os.path.isfile(speakers_file)):
        logger.info("%s: no speeches.lst/speakers.lst in %s; spk_id left empty.", DATASET, folder)
        return {}
    speeches, speakers = read_lines(speeches_file), read_lines(speakers_file)
    if len(speeches) != len(speakers):
        raise ValueError(
            f"{DATASET}: {speeches_file} has {len(speeches)} lines but {speakers_file} has "
            f"{len(speakers)}; they must be parallel (corrupt download? unpack "
            f"{VERSION}.tar.gz again)."
        )
    return {
        speech.strip(): speaker.strip().rstrip("/").rsplit("/", 1)[-1]
        for speech, speaker in zip(speeches, speakers)
    }


def speech_duration(path):
    """``(seconds, None)`` read from an m4a header with PyAV, ``(None, reason)`` when it cannot
    be read (``(None, None)`` when the header holds no duration)."""
    try:
        import av
    except ImportError:
        return None, "decoding m4a needs PyAV (`pip install av`, in requirements.txt)"
    try:
        with av.open(path) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                return None, "no audio stream"
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base), None
            if container.duration:
                return container.duration / av.time_base, None
            return None, None
    except Exception as err:  # PyAV raises its own error classes (av.error.*)
        return None, f"{type(err).__name__}: {err}"


def read_split(data_folder, split, skip):
    """Candidate manifest rows of one split (see the module docstring)."""
    set_name, target = parse_split(split)
    root = find_root(data_folder)
    folder = os.path.join(root, SOURCE, target, set_name)
    files = {
        name: os.path.join(folder, name)
        for name in ("segments.lst", f"segments.{SOURCE}", f"segments.{target}")
    }
    missing = [name for name, path in files.items() if not os.path.isfile(path)]
    if missing:
        pairs = os.path.join(root, SOURCE)
        found = sorted(
            f"{t}/{s}"
            for t in os.listdir(pairs)
            if os.path.isdir(os.path.join(pairs, t))
            for s in os.listdir(os.path.join(pairs, t))
            if os.path.isdir(os.path.join(pairs, t, s))
        )
        raise layout_error(
            DATASET,
            data_folder,
            EXPECTED_LAYOUT,
            f"{folder} lacks {missing} (en/ holds the sets {found or 'none'}). " + HINT,
        )
    audios = os.path.join(root, SOURCE, "audios")
    if not os.path.isdir(audios):
        raise layout_error(
            DATASET, data_folder, EXPECTED_LAYOUT, f"{audios} does not exist. " + HINT
        )
    # Line i of the three files describes segment i: they are decoded line by line, and a
    # segment with a line that is not UTF-8 is skipped (bad_encoding), the others are kept.
    segments = list(decoded_lines(files["segments.lst"]))
    texts = {
        name: list(decoded_lines(path)) for name, path in files.items() if name != "segments.lst"
    }
    for name, lines in texts.items():
        if len(lines) != len(segments):
            raise ValueError(
                f"{DATASET} {split}: {files['segments.lst']} has {len(segments)} lines but "
                f"{files[name]} has {len(lines)}; they must be parallel (corrupt or partial "
                f"download: unpack {VERSION}.tar.gz again)."
            )
    speakers = speaker_map(folder)
    durations, clamped = {}, 0
    names = ["segments.lst", f"segments.{SOURCE}", f"segments.{target}"]
    parallel = zip(segments, texts[names[1]], texts[names[2]])
    for (line_no, line, bad_lst), (_, source, bad_src), (_, translation, bad_tgt) in parallel:
        fields = line.split()
        problems = [
            f"{files[name]}:{line_no}: {problem}"
            for name, problem in zip(names, (bad_lst, bad_src, bad_tgt))
            if problem is not None
        ]
        try:
            if len(fields) != 3:
                raise ValueError
            speech, start, stop = fields[0], float(fields[1]), float(fields[2])
            if not (math.isfinite(start) and math.isfinite(stop)):
                raise ValueError
            utt_id = f"{speech}_{round(start * 1000):07d}_{round(stop * 1000):07d}"
        except ValueError:
            utt_id = None
        if problems:
            skip(utt_id or f"line{line_no}", "bad_encoding", "; ".join(problems))
            continue
        if utt_id is None:
            skip(
                fields[0] if fields else f"line{line_no}",
                "malformed_segment",
                f"{files['segments.lst']}:{line_no}: {line!r}",
            )
            continue
        wav = os.path.join(audios, f"{speech}.m4a")
        if os.path.isfile(wav):  # a missing file is left to run_preparation (missing_audio)
            if wav not in durations:
                durations[wav] = speech_duration(wav)
            length, error = durations[wav]
            if error is not None:
                skip(utt_id, "unreadable_audio", f"{wav}: {error}")
                continue
            if length is not None and stop > length + SEGMENT_TOLERANCE:
                skip(utt_id, "segment_beyond_audio", f"ends at {stop}s, {wav} lasts {length:.2f}s")
                continue
            if length is not None and stop > length:  # alignment slack: cut to the audio
                if start >= length:
                    skip(utt_id, "segment_beyond_audio", f"starts at {start}s, after its audio")
                    continue
                clamped += 1
                stop = length
        yield {
            "ID": f"{utt_id}-{target}",
            "audio_id": utt_id,
            "wav": wav,
            "start": start,
            "stop": stop,
            "spk_id": speakers.get(speech, ""),
            "wrd": normalize_text(source.strip()),
            "transcript": source.strip(),
            "tgt": translation.strip(),
            "tgt_lang": target,
            "task": "st",
        }
    if clamped:
        logger.info(
            "%s %s: %d segment(s) ended up to %.1f s after their audio; their stop (and "
            "duration) is cut to the end of the audio.",
            DATASET,
            split,
            clamped,
            SEGMENT_TOLERANCE,
        )


def prepare_europarlst(data_folder, save_folder, splits, max_duration=None, skip_prep=False):
    """Write ``<save_folder>/<split>.csv`` for each EuroParl-ST split (nothing to do when the
    manifests are up to date).

    Arguments
    ---------
    data_folder : str
        Folder holding ``v1.1/`` (or the ``v1.1`` folder itself).
    save_folder : str
        Where the manifests, ``<split>.skipped.tsv`` and ``prepare_summary.json`` go.
    splits : list of str
        ``<set>_en-<tgt>``, e.g. ``["test_en-es", "test_en-fr", "test_en-de", "test_en-it"]``.
    max_duration : float, optional
        Longer segments (seconds) are skipped and counted.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).

    Returns
    -------
    dict
        Per split: ``utterances``, ``hours``, ``skipped`` (reason -> count).
    """
    if skip_prep:
        return {}
    for split in splits:
        parse_split(split)
    data_folder = os.path.abspath(data_folder)
    return run_preparation(
        DATASET,
        data_folder,
        save_folder,
        splits,
        lambda split, skip: read_split(data_folder, split, skip),
        required=["wrd", "tgt"],
        max_duration=max_duration,
        skip_prep=skip_prep,
        options={
            "version": VERSION,
            "segment_tolerance": SEGMENT_TOLERANCE,
            "overshoot": "cut to the audio",
        },
    )


if __name__ == "__main__":
    prepare_cli(prepare_europarlst, __doc__.split("\n\n")[0], splits=SPLITS)
