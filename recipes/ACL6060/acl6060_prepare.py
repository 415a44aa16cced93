"""ACL 60/60 preparation (English talks of ACL 2022: ASR and speech translation): SpeechBrain
CSV manifests from the official release layout (IWSLT 2023, https://aclanthology.org/2023.iwslt-1.2,
attachment ``2023.iwslt-1.2.dataset.zip``).

Expected layout (the zip unpacked; it creates ``2/acl_6060/``)::

    <data_folder>/2/acl_6060/<set>/text/xml/ACL.6060.<set>.en-xx.<lang>.xml
    <data_folder>/2/acl_6060/<set>/segmented_wavs/gold/sent_<seg id>.wav

with ``<set>`` in ``dev``, ``eval``. The XML files hold one ``<doc docid="<talk>">`` per talk
(the talk's Anthology id, e.g. ``2022.acl-long.268``) and one ``<seg id="<n>">`` per sentence;
``<lang>`` = ``en`` is the post-edited transcript, the others (``ar de fa fr ja nl pt ru tr
zh``) the translations, parallel by seg id. ``sent_<n>.wav`` is the audio of seg ``<n>``
(seg ids are numbered through the whole set). ``data_folder`` may also be the folder holding
``acl_6060/`` or the ``acl_6060`` folder itself. The release also has ``full_wavs/`` (whole
talks, without segment times), ``segmented_wavs/shas/`` (automatic segmentation) and
``text/txt`` / ``text/tagged_terminology``: not used here.

Translations that are not in the release (the IWSLT 2025 system's Italian was obtained
automatically) are read from ``translations_folder``: ``ACL.6060.<set>.en-xx.<tgt>.txt``, one
translation per line, line ``i`` translating the ``i``-th ``<seg>`` of the English XML (the
order of the release's ``text/txt/ACL.6060.<set>.en-xx.en.txt``), e.g. written by the project's
translation tool from that English file.

Splits: ``<set>_asr`` (English transcripts) and ``<set>_en-<tgt>`` (translations).

Columns written (``<save_folder>/<split>.csv``): ``ID`` (``<talk>_<seg id, 5 digits>`` for ASR,
``<talk>_<seg id>-<tgt>`` for ST), ``duration`` (read from the wav header), ``wav`` (absolute
path of ``sent_<n>.wav``), ``audio_id`` (``<talk>_<seg id>``: one cached feature file per
segment for every task and language pair), ``spk_id`` (the talk id: one presenter per talk; the
official scoring groups segments by talk through this column), ``wrd`` (MMS-normalized
transcript), ``transcript`` (the English seg as released), ``tgt`` / ``tgt_lang`` (ST) and
``task`` (``asr`` or ``st``). Rows are written in XML order (talk by talk, seg order): the
talk-level scoring concatenates hypotheses in that order. Segments whose wav is missing or
unreadable, empty transcripts or translations, translation lines that are not UTF-8,
duplicates and segments longer than ``max_duration`` are skipped, counted and listed in
``<save_folder>/<split>.skipped.tsv``.
``<save_folder>/<split>.references.csv`` lists every segment of the split's talks, skipped
ones included (``ID``, ``spk_id``, ``wrd``, ``transcript``, ``tgt``, ``tgt_lang``): the
official scoring (``evaluation.iwslt_scoring``) scores against all of them, as the organizers
do, so a skipped segment counts as an empty hypothesis and its reference text stays. A
translation XML whose seg ids are not those of the English XML, or a translations file whose
line count differs from the English segment count, is an error.

Usage::

    python recipes/ACL6060/acl6060_prepare.py /path/to/acl6060 results/acl6060/manifests \\
        eval_asr eval_en-de eval_en-zh [--translations_folder /path/to/translations] eval_en-it

Authors
-------
speechmapper developers, 2026
"""

import hashlib
import logging
import os
import re
import xml.etree.ElementTree as ET

from speechmapper_plugin.data.manifests import write_csv
from speechmapper_plugin.data.preparation import layout_error, prepare_cli, run_preparation
from speechmapper_plugin.evaluation.iwslt_scoring import references_path
from speechmapper_plugin.utils.text import normalize_text
from speechmapper_plugin.utils.textfiles import TextEncodingError, decoded_lines

logger = logging.getLogger(__name__)

DATASET = "ACL6060"
VERSION = "2023.iwslt-1.2"
SOURCE = "en"
SETS = ("dev", "eval")
RELEASED_TARGETS = ("ar", "de", "fa", "fr", "ja", "nl", "pt", "ru", "tr", "zh")
# The IWSLT 2025 instruction-following track: ASR (en) and ST en-de, en-it, en-zh.
IWSLT25_SPLITS = ("eval_asr", "eval_en-de", "eval_en-it", "eval_en-zh")
RELEASE_FOLDERS = (os.path.join("2", "acl_6060"), "acl_6060", "")
EXPECTED_LAYOUT = (
    "<data_folder>/2/acl_6060/<set>/text/xml/ACL.6060.<set>.en-xx.<lang>.xml and the segment "
    "audio in <data_folder>/2/acl_6060/<set>/segmented_wavs/gold/sent_<seg id>.wav, <set> in "
    "dev, eval (data_folder may also hold acl_6060/ or be it)"
)
HINT = (
    "Download the ACL 60/60 dev and eval sets (https://aclanthology.org/2023.iwslt-1.2, "
    "attachment 2023.iwslt-1.2.dataset.zip) and unzip it: it creates 2/acl_6060/."
)


def parse_split(split):
    """``"eval_asr"`` -> ``("eval", None)``, ``"dev_en-de"`` -> ``("dev", "de")``; a
    ``ValueError`` naming the valid splits else.

    Example
    -------
    >>> parse_split("eval_en-it"), parse_split("dev_asr")
    (('eval', 'it'), ('dev', None))
    """
    set_name, _, rest = split.partition("_")
    if set_name in SETS and rest == "asr":
        return set_name, None
    match = re.fullmatch(r"en-([a-z]{2,3})", rest)
    if set_name not in SETS or match is None:
        raise ValueError(
            f"{DATASET}: unknown split {split!r}; valid splits are <set>_asr and <set>_en-<tgt> "
            f"with <set> in {list(SETS)} and <tgt> a language code (released: "
            f"{list(RELEASED_TARGETS)}; others from translations_folder); the IWSLT 2025 "
            f"system uses {list(IWSLT25_SPLITS)}."
        )
    return set_name, match.group(1)


def find_set_folder(data_folder, set_name):
    """The ``acl_6060/<set>`` folder (holding ``text/xml``) in or at ``data_folder``."""
    for release in RELEASE_FOLDERS:
        folder = os.path.join(data_folder, release, set_name)
        if os.path.isdir(os.path.join(folder, "text", "xml")):
            return folder
    raise layout_error(DATASET, data_folder, EXPECTED_LAYOUT, HINT)


def xml_file(folder, set_name, lang):
    """``<folder>/text/xml/ACL.6060.<set>.en-xx.<lang>.xml``."""
    return os.path.join(folder, "text", "xml", f"ACL.6060.{set_name}.en-xx.{lang}.xml")


def translation_file(translations_folder, set_name, tgt):
    """``<translations_folder>/ACL.6060.<set>.en-xx.<tgt>.txt``."""
    return os.path.join(translations_folder, f"ACL.6060.{set_name}.en-xx.{tgt}.txt")


def read_xml(path):
    """``[(talk, seg_id, text)]`` of a release XML file, in document order.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.xml")
    >>> _ = open(p, "w").write('<mteval><doc docid="t1"><seg id="1"> Hi. </seg></doc></mteval>')
    >>> read_xml(p)
    [('t1', '1', 'Hi.')]
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{DATASET}: {path} is not valid XML ({err}): corrupt download?") from None
    segments = []
    for doc in root.iter("doc"):
        talk = (doc.get("docid") or "").strip()
        if not talk:
            raise ValueError(f"{DATASET}: {path} has a <doc> without docid (the talk id).")
        for seg in doc.iter("seg"):
            text = " ".join("".join(seg.itertext()).split())
            segments.append((talk, (seg.get("id") or "").strip(), text))
    return segments


def _translations(folder, set_name, tgt, english, translations_folder, data_folder):
    """``seg_id -> translation`` of one target: the release XML, else the translations file
    (read line by line: a line that is not UTF-8 maps its seg to a ``TextEncodingError``, and
    that segment is skipped as ``bad_encoding``)."""
    path = xml_file(folder, set_name, tgt)
    if os.path.isfile(path):
        segments = read_xml(path)
        english_ids = {seg for _, seg, _ in english}
        extra = [seg for _, seg, _ in segments if seg not in english_ids]
        if extra:
            raise ValueError(
                f"{DATASET}: {path} holds seg ids that the English XML does not have "
                f"({extra[:5]}); the files must be parallel (corrupt download?)."
            )
        return {seg: text for _, seg, text in segments}
    if translations_folder:
        path = translation_file(translations_folder, set_name, tgt)
        if os.path.isfile(path):
            lines = list(decoded_lines(path))
            if len(lines) != len(english):
                raise ValueError(
                    f"{DATASET}: {path} has {len(lines)} lines but the English XML of {set_name} "
                    f"has {len(english)} segments; line i must translate the i-th English "
                    f"segment ({xml_file(folder, set_name, SOURCE)})."
                )
            return {
                seg: line.strip() if problem is None else TextEncodingError(path, no, problem)
                for (_, seg, _), (no, line, problem) in zip(english, lines)
            }
    found = sorted(os.listdir(os.path.join(folder, "text", "xml")))
    missing = xml_file(folder, set_name, tgt)
    if translations_folder:
        missing += f" nor {translation_file(translations_folder, set_name, tgt)}"
    raise layout_error(
        DATASET,
        data_folder,
        EXPECTED_LAYOUT,
        f"There is no {missing} (text/xml holds {found}). en-{tgt} is not in the release: give "
        f"a translation of the English segments with translations_folder "
        f"(ACL.6060.{set_name}.en-xx.{tgt}.txt, one line per segment).",
        found=found,
    )


def read_split(data_folder, split, skip, translations_folder=None):
    """Candidate manifest rows of one split (see the module docstring)."""
    set_name, tgt = parse_split(split)
    folder = find_set_folder(data_folder, set_name)
    english_file = xml_file(folder, set_name, SOURCE)
    if not os.path.isfile(english_file):
        raise layout_error(
            DATASET, data_folder, EXPECTED_LAYOUT, f"{english_file} does not exist. " + HINT
        )
    english = read_xml(english_file)
    translations = None
    if tgt is not None:
        translations = _translations(
            folder, set_name, tgt, english, translations_folder, data_folder
        )
    audio = os.path.join(folder, "segmented_wavs", "gold")
    for talk, seg, transcript in english:
        if not seg.isdigit():
            skip(
                f"{talk}_{seg or '<no id>'}", "malformed_segment", f"{english_file}: seg id {seg!r}"
            )
            continue
        audio_id = f"{talk}_{int(seg):05d}"
        row = {
            "ID": audio_id if tgt is None else f"{audio_id}-{tgt}",
            "audio_id": audio_id,
            "wav": os.path.join(audio, f"sent_{seg}.wav"),
            "spk_id": talk,
            "wrd": normalize_text(transcript),
            "transcript": transcript,
            "task": "asr" if tgt is None else "st",
        }
        if tgt is not None:
            translation = translations.get(seg, "")
            if isinstance(translation, TextEncodingError):
                skip(
                    row["ID"],
                    "bad_encoding",
                    f"{translation.path}:{translation.line}: {translation.detail}",
                )
                continue
            row.update(tgt=translation, tgt_lang=tgt)
            if not row["tgt"]:
                skip(row["ID"], "empty_tgt", f"no en-{tgt} translation of seg {seg}")
                continue
        yield row


def reference_rows(data_folder, split, translations_folder=None):
    """Every segment of the split's talks, in XML order, with its reference texts, whether
    or not the manifest keeps it (the official scoring's references).

    Returns
    -------
    list of dict
        ``ID`` (as in the manifest), ``spk_id`` (the talk), ``wrd``, ``transcript`` and, for
        ST, ``tgt`` and ``tgt_lang``.
    """
    set_name, tgt = parse_split(split)
    folder = find_set_folder(data_folder, set_name)
    english = read_xml(xml_file(folder, set_name, SOURCE))
    translations = {}
    if tgt is not None:
        translations = _translations(
            folder, set_name, tgt, english, translations_folder, data_folder
        )
    rows = []
    for talk, seg, transcript in english:
        audio_id = f"{talk}_{int(seg):05d}" if seg.isdigit() else f"{talk}_{seg or '<no id>'}"
        row = {
            "ID": audio_id if tgt is None else f"{audio_id}-{tgt}",
            "spk_id": talk,
            "wrd": normalize_text(transcript),
            "transcript": transcript,
        }
        if tgt is not None:
            row.update(tgt=translations.get(seg, ""), tgt_lang=tgt)
        rows.append(row)
    return rows


def _prepare_split(data_folder, save_folder, split, skip, translations_folder):
    """The manifest rows of a split (``read_split``), after writing its references file."""
    rows = reference_rows(data_folder, split, translations_folder)
    fields = ["ID", "spk_id", "wrd", "transcript"] + (
        ["tgt", "tgt_lang"] if "tgt" in rows[0] else []
    )
    os.makedirs(save_folder, exist_ok=True)
    write_csv(references_path(save_folder, split), rows, fields)
    yield from read_split(data_folder, split, skip, translations_folder)


def _file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def prepare_acl6060(
    data_folder, save_folder, splits, max_duration=None, skip_prep=False, translations_folder=None
):
    """Write ``<save_folder>/<split>.csv`` for each ACL 60/60 split (nothing to do when the
    manifests are up to date).

    Arguments
    ---------
    data_folder : str
        Folder holding ``2/acl_6060/`` (or ``acl_6060/``, or that folder itself).
    save_folder : str
        Where the manifests, ``<split>.skipped.tsv`` and ``prepare_summary.json`` go.
    splits : list of str
        ``<set>_asr`` / ``<set>_en-<tgt>``, e.g. ``["eval_asr", "eval_en-de", "eval_en-zh"]``.
    max_duration : float, optional
        Longer segments (seconds) are skipped and counted.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).
    translations_folder : str, optional
        Folder of ``ACL.6060.<set>.en-xx.<tgt>.txt`` translations for targets the release
        lacks (e.g. Italian); their content is part of the up-to-date check.

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
    digests = {}
    if translations_folder:
        translations_folder = os.path.abspath(translations_folder)
        if not os.path.isdir(translations_folder):
            raise FileNotFoundError(
                f"{DATASET}: translations_folder={translations_folder!r} does not exist; it "
                "must hold ACL.6060.<set>.en-xx.<tgt>.txt files (one line per English segment)."
            )
        for name in sorted(os.listdir(translations_folder)):
            if name.startswith("ACL.6060.") and name.endswith(".txt"):
                digests[name] = _file_digest(os.path.join(translations_folder, name))
    return run_preparation(
        DATASET,
        data_folder,
        save_folder,
        splits,
        lambda split, skip: _prepare_split(
            data_folder, save_folder, split, skip, translations_folder
        ),
        required=["transcript"],
        max_duration=max_duration,
        skip_prep=skip_prep,
        options={
            "version": VERSION,
            "translations_folder": translations_folder,
            "translations": digests,
            "references_file": 1,  # <split>.references.csv (older manifests: prepared again)
        },
    )


if __name__ == "__main__":
    prepare_cli(
        prepare_acl6060,
        __doc__.split("\n\n")[0],
        options=[
            (
                "translations_folder",
                None,
                "folder of ACL.6060.<set>.en-xx.<tgt>.txt translations (targets not released)",
            )
        ],
    )
