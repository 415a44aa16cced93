"""SQA passage re-synthesis with SeamlessM4T-v2 TTS over a random pool of speakers (IWSLT25).

The IWSLT25 instruction-following system re-synthesized the Spoken-SQuAD passages "using
Seamless with a random pool of speakers": models trained on single-speaker TTS audio changed
behaviour with the voice, and the new audio also fixed misalignments between the audio and
the passage text (talk, "Creating a multilingual SQA training data").

For each passage of an SQA manifest (rows sharing ``audio_id``; one row per question):

1. a speaker is drawn from the pool (vocoder speaker ids; default: all of them) by a generator
   seeded with ``<seed>|<audio_id>``: the draw is reproducible, independent of the order and of
   an interruption, and spread uniformly over the pool;
2. the passage text (``context`` by default) is split into sentences (and sentences longer than
   ``max_chars`` at word boundaries), synthesized with ``SeamlessM4Tv2ForTextToSpeech``
   (``generate(..., tgt_lang="eng", speaker_id=...)``, batched) and concatenated with
   ``pause`` seconds of silence in between;
3. the waveform is resampled from the vocoder's rate to 16 kHz and written atomically as 16-bit
   PCM to ``<audio_folder>/<new audio_id>.wav``, the new ``audio_id`` being
   ``<audio_id>_seamless<speaker>`` (features are cached by ``audio_id``, so new audio needs a
   new key); every row of the passage gets the new ``wav``, ``duration``, ``audio_id`` and
   ``spk_id`` (``seamless_<speaker>``), empty ``start``/``stop``, and ``transcript`` / ``wrd``
   (when present) set to the synthesized text (normalized for ``wrd``), since it is now
   exactly what is said.

Passages are dropped, counted and listed with a reason: ``empty_text``, ``inconsistent_text``
(rows of one ``audio_id`` with different texts), ``synthesis_error`` (with the exception),
``empty_audio`` and ``too_long`` (over ``max_duration`` seconds). Every decision is logged as
it is made (``resumable.ResumableJob``): an interrupted run resumes without synthesizing the
passages already decided again.

Authors
-------
speechmapper developers, 2026
"""

import argparse
import collections
import json
import logging
import os
import random
import re

import numpy as np
import soundfile
import torch

from speechmapper_plugin.datatools.resumable import ResumableJob
from speechmapper_plugin.datatools.translation import (
    DEFAULT_SEAMLESS_MODEL,
    SeamlessModel,
    seamless_code,
)
from speechmapper_plugin.utils.text import normalize_text

logger = logging.getLogger(__name__)


TOOL = "resynthesize_sqa"


SAMPLE_RATE = 16000


DEFAULT_MAX_CHARS = 300


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def split_sentences(text, max_chars=DEFAULT_MAX_CHARS):
    """Sentences of ``text`` (split after ``. ! ? ;``), longer ones cut at word boundaries.

    Arguments
    ---------
    text : str
        A passage.
    max_chars : int
        Longest piece (a single longer word is kept whole).

    Returns
    -------
    list of str
        Non-empty pieces, in order.

    Example
    -------
    >>> split_sentences("the cat sat. where? on the big old mat", max_chars=10)
    ['the cat', 'sat.', 'where?', 'on the big', 'old mat']
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars must be a positive int, got {max_chars!r}.")
    pieces = []
    for sentence in _SENTENCE_END.split(str(text).strip()):
        current = ""
        for word in sentence.split():
            if current and len(current) + 1 + len(word) > max_chars:
                pieces.append(current)
                current = word
            else:
                current = f"{current} {word}" if current else word
        if current:
            pieces.append(current)
    return pieces


def parse_speaker_pool(pool, num_speakers):
    """Speaker ids from ``"0-9,15"`` / a list of ints / None (all ``num_speakers`` ids).

    Arguments
    ---------
    pool : str, list of int or None
        Ids and inclusive ranges, comma separated.
    num_speakers : int
        Number of vocoder speakers (``config.vocoder_num_spkrs``; 200 in v2-large).

    Returns
    -------
    list of int
        Sorted distinct ids.

    Example
    -------
    >>> parse_speaker_pool("0-3,7", 200)
    [0, 1, 2, 3, 7]
    >>> parse_speaker_pool(None, 3)
    [0, 1, 2]
    """
    if pool is None:
        return list(range(num_speakers))
    items = pool.split(",") if isinstance(pool, str) else list(pool)
    ids = []
    try:
        for item in items:
            text = str(item).strip()
            start, sep, stop = text.partition("-")
            if sep and start:
                if int(start) > int(stop):
                    raise ValueError(text)
                ids.extend(range(int(start), int(stop) + 1))
            else:
                if isinstance(item, (bool, float)):
                    raise ValueError(text)
                ids.append(int(text))
    except ValueError:
        raise ValueError(
            f"Bad speaker pool {pool!r}: give speaker ids and ranges such as '0-9,15'."
        ) from None
    bad = sorted({i for i in ids if not 0 <= i < num_speakers})
    if not ids or bad:
        raise ValueError(
            f"Bad speaker pool {pool!r}: "
            + (f"ids {bad} are" if bad else "it is empty, it must be")
            + f" within the vocoder's {num_speakers} speakers (0..{num_speakers - 1})."
        )
    return sorted(set(ids))


def draw_speaker(audio_id, pool, seed):
    """The speaker of a passage: a uniform draw from ``pool`` seeded by ``seed`` and the id.

    Example
    -------
    >>> draw_speaker("p1", [3, 5, 8], 0) == draw_speaker("p1", [3, 5, 8], 0)
    True
    """
    return random.Random(f"{seed}|{audio_id}").choice(list(pool))


def resample(wav, rate, target=SAMPLE_RATE):
    """``wav`` (1-D float array) from ``rate`` to ``target`` Hz (unchanged when equal).

    Example
    -------
    >>> resample(np.zeros(24000, dtype=np.float32), 24000).shape
    (16000,)
    """
    wav = np.asarray(wav, dtype=np.float32)
    if int(rate) == int(target):
        return wav
    import torchaudio.functional

    return torchaudio.functional.resample(torch.from_numpy(wav), int(rate), int(target)).numpy()


def _write_wav(path, wav):
    """16-bit PCM at 16 kHz through a temporary file and ``os.replace``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.wav"
    try:
        soundfile.write(tmp, np.clip(wav, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class SeamlessSynthesizer(SeamlessModel):
    """Batched text-to-speech with ``SeamlessM4Tv2ForTextToSpeech``.

    Arguments
    ---------
    model : str
        Hub id (default ``facebook/seamless-m4t-v2-large``) or local folder.
    device : str, optional
        e.g. ``cuda:0``; default: CUDA when available, else the CPU.
    dtype : str
        ``float32``, ``bfloat16``, ``float16`` or ``auto``.
    batch_size : int
        Sentences per ``generate`` call.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.seamless import build_tiny_seamless
    >>> folder = build_tiny_seamless(tempfile.mkdtemp(), ["the cat sat."])
    >>> tts = SeamlessSynthesizer(str(folder), device="cpu")
    >>> wavs = tts.synthesize(["the cat sat.", "the cat"], speaker=1)
    >>> len(wavs), wavs[0].ndim, tts.num_speakers, tts.sampling_rate
    (2, 1, 4, 16000)
    """

    model_class = "SeamlessM4Tv2ForTextToSpeech"
    kind = "text-to-speech"

    @property
    def num_speakers(self):
        """Number of vocoder speakers (ids ``0 .. num_speakers - 1``)."""
        return int(self.load().config.vocoder_num_spkrs)

    @property
    def sampling_rate(self):
        """Output rate of the vocoder in Hz."""
        return int(self.load().config.sampling_rate)

    def check_language(self, lang):
        """Raises ValueError naming the model if it cannot speak ``lang`` (ISO code)."""
        code = seamless_code(lang)
        supported = sorted(self.load().generation_config.vocoder_lang_code_to_id)
        if code not in supported:
            raise ValueError(
                f"Model {self.model} cannot synthesize {lang} ({code}); its vocoder knows "
                f"{supported}."
            )

    @torch.no_grad()
    def synthesize(self, sentences, speaker, lang="en"):
        """One waveform (1-D float32 array at :attr:`sampling_rate`) per sentence, in order."""
        model = self.load()
        code = seamless_code(lang)
        out = []
        for start in range(0, len(sentences), self.batch_size):
            batch = list(sentences[start : start + self.batch_size])
            inputs = self._tokenizer(batch, src_lang=code, padding=True, return_tensors="pt").to(
                self.device
            )
            waveforms, lengths = model.generate(**inputs, tgt_lang=code, speaker_id=int(speaker))
            lengths = lengths.reshape(-1).tolist()
            for i in range(len(batch)):
                wav = waveforms[i, : int(lengths[i])].float().cpu().numpy()
                out.append(wav)
        return out


def synthesize_passage(
    synthesizer, text, speaker, lang="en", max_chars=DEFAULT_MAX_CHARS, pause=0.2
):
    """A passage's 16 kHz waveform: its sentences synthesized, joined with ``pause`` s of silence.

    Example
    -------
    >>> class Beep:
    ...     sampling_rate = 8000
    ...     def synthesize(self, sentences, speaker, lang="en"):
    ...         return [np.ones(800, dtype=np.float32) for _ in sentences]
    >>> synthesize_passage(Beep(), "one. two.", speaker=0, pause=0.5).shape  # 0.1 + 0.5 + 0.1 s
    (11200,)
    """
    sentences = split_sentences(text, max_chars)
    wavs = synthesizer.synthesize(sentences, speaker, lang=lang)
    gap = np.zeros(int(round(pause * synthesizer.sampling_rate)), dtype=np.float32)
    pieces = []
    for i, wav in enumerate(wavs):
        if i:
            pieces.append(gap)
        pieces.append(np.asarray(wav, dtype=np.float32).reshape(-1))
    joined = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return resample(joined, synthesizer.sampling_rate)


def _passages(rows):
    """``{audio_id: [rows]}`` in file order (``audio_id`` defaults to the row's ID)."""
    groups = collections.OrderedDict()
    for row in rows:
        groups.setdefault(row.get("audio_id") or row["ID"], []).append(row)
    return groups


def _read(path, text_column):
    from speechmapper_plugin.data.manifests import read_manifest_rows

    return read_manifest_rows(
        path, [text_column], hint="It holds the passage text to synthesize: see --text-column."
    )


def resynthesize_sqa(
    input,
    output,
    synthesizer,
    audio_folder=None,
    speakers=None,
    seed=0,
    text_column="context",
    lang="en",
    max_chars=DEFAULT_MAX_CHARS,
    pause=0.2,
    max_duration=None,
    settings=None,
):
    """Re-synthesizes the passages of an SQA manifest with random Seamless speakers.

    Arguments
    ---------
    input, output : str
        Input and output manifests (CSV).
    synthesizer : SeamlessSynthesizer
        Or an object with ``synthesize(sentences, speaker, lang)``, ``sampling_rate`` and
        ``num_speakers``.
    audio_folder : str, optional
        Where the wavs go (default: ``<output without .csv>_audio``).
    speakers : str or list of int, optional
        The speaker pool (:func:`parse_speaker_pool`; default: every vocoder speaker).
    seed : int
        Seed of the speaker draws.
    text_column : str
        Column holding the passage text.
    lang : str
        ISO code of the passage language.
    max_chars : int
        Longest piece synthesized in one go (:func:`split_sentences`).
    pause : float
        Seconds of silence between sentences.
    max_duration : float, optional
        Passages whose audio is longer are dropped (``too_long``).
    settings : dict, optional
        Model settings recorded in the job (default: the synthesizer's ``model``).

    Returns
    -------
    dict
        The report (``resumable.ResumableJob.finish``); items are passages.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.data.manifests import read_manifest, write_csv
    >>> folder = tempfile.mkdtemp()
    >>> src, out = os.path.join(folder, "sqa.csv"), os.path.join(folder, "tts.csv")
    >>> write_csv(src, [{"ID": "q1", "audio_id": "p1", "context": "Ann came. She sat."},
    ...                 {"ID": "q2", "audio_id": "p1", "context": "Ann came. She sat."},
    ...                 {"ID": "q3", "audio_id": "p2", "context": ""}],
    ...           ["ID", "audio_id", "context"])
    >>> class Beep:
    ...     model, sampling_rate, num_speakers = "beep", 16000, 10
    ...     def synthesize(self, sentences, speaker, lang="en"):
    ...         return [np.full(1600, 0.1, dtype=np.float32) for _ in sentences]
    >>> report = resynthesize_sqa(src, out, Beep(), speakers="3-4", pause=0.1)
    >>> report["kept"], report["dropped"]
    (1, {'empty_text': 1})
    >>> row = read_manifest(out)["q2"]
    >>> row["duration"], row["audio_id"], row["spk_id"], os.path.basename(row["wav"])
    (0.3, 'p1_seamless3', 'seamless_3', 'p1_seamless3.wav')
    """
    if not isinstance(pause, (int, float)) or isinstance(pause, bool) or pause < 0:
        raise ValueError(f"pause must be a number of seconds >= 0, got {pause!r}.")
    if max_duration is not None and not max_duration > 0:
        raise ValueError(
            f"max_duration must be a positive number of seconds, got {max_duration!r}."
        )
    split_sentences("", max_chars)  # validates max_chars
    rows, fieldnames = _read(input, text_column)
    pool = parse_speaker_pool(speakers, synthesizer.num_speakers)
    if hasattr(synthesizer, "check_language"):
        synthesizer.check_language(lang)
    if audio_folder is None:
        audio_folder = f"{os.path.splitext(output)[0]}_audio"
    audio_folder = os.path.abspath(audio_folder)
    if settings is None:
        settings = {"model": getattr(synthesizer, "model", type(synthesizer).__name__)}
    job = ResumableJob(
        output,
        TOOL,
        {
            **settings,
            "speakers": pool,
            "seed": seed,
            "text_column": text_column,
            "lang": lang,
            "max_chars": max_chars,
            "pause": pause,
            "max_duration": max_duration,
            "audio_folder": audio_folder,
        },
    )
    passages = _passages(rows)
    items = [{"ID": audio_id, "rows": group} for audio_id, group in passages.items()]
    pending = list(job.pending(items))
    logger.info("%s: %d passages (%d rows), %d to do", TOOL, len(items), len(rows), len(pending))
    for item in pending:
        _decide(
            job,
            item,
            synthesizer,
            pool,
            seed,
            text_column,
            lang,
            max_chars,
            pause,
            max_duration,
            audio_folder,
        )
    extra = [name for name in ("wav", "duration", "audio_id", "spk_id") if name not in fieldnames]
    return job.finish(fieldnames + extra, input_items=len(items))


def _decide(
    job,
    item,
    synthesizer,
    pool,
    seed,
    text_column,
    lang,
    max_chars,
    pause,
    max_duration,
    audio_folder,
):
    audio_id, group = item["ID"], item["rows"]
    texts = {str(row[text_column]).strip() for row in group}
    questions = f"{len(group)} row(s)"
    if len(texts) > 1:
        job.drop(audio_id, "inconsistent_text", f"{questions} with {len(texts)} different texts")
        return
    text = texts.pop()
    if not text:
        job.drop(audio_id, "empty_text", f"{questions}, empty {text_column}")
        return
    speaker = draw_speaker(audio_id, pool, seed)
    try:
        wav = synthesize_passage(synthesizer, text, speaker, lang, max_chars, pause)
    except Exception as err:  # counted and listed, the job goes on (e.g. CUDA OOM on one text)
        logger.warning("%s: synthesis of %s failed: %s", TOOL, audio_id, err)
        job.drop(audio_id, "synthesis_error", f"{type(err).__name__}: {err}")
        return
    duration = len(wav) / SAMPLE_RATE
    if not len(wav):
        job.drop(audio_id, "empty_audio", f"{questions}, speaker {speaker}")
        return
    if max_duration is not None and duration > max_duration:
        job.drop(audio_id, "too_long", f"{duration:.2f} s > {max_duration} s")
        return
    new_id = f"{audio_id}_seamless{speaker}"
    path = os.path.join(audio_folder, f"{new_id}.wav")
    _write_wav(path, wav)
    out = []
    for row in group:
        new = dict(row, wav=path, duration=duration, audio_id=new_id, spk_id=f"seamless_{speaker}")
        for column in ("start", "stop"):
            if column in new:
                new[column] = ""
        if "transcript" in new:
            new["transcript"] = text
        if "wrd" in new:
            new["wrd"] = normalize_text(text)
        out.append(new)
    job.keep(audio_id, out)


def main(argv=None):
    """Command line: ``python recipes/IWSLT25/tools/resynthesize_sqa.py --help``."""
    parser = argparse.ArgumentParser(
        description="Re-synthesize the passages of an SQA manifest with SeamlessM4T-v2 TTS, "
        "one random speaker of a pool per passage."
    )
    parser.add_argument("--input", required=True, help="SQA manifest (CSV)")
    parser.add_argument("--output", required=True, help="output manifest (CSV)")
    parser.add_argument("--audio-folder", default=None, help="wav folder (<output>_audio)")
    parser.add_argument("--model", default=DEFAULT_SEAMLESS_MODEL, help="Seamless hub id or folder")
    parser.add_argument(
        "--speakers", default=None, help="speaker pool, e.g. 0-199 or 0-9,42 (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the speaker draws")
    parser.add_argument("--text-column", default="context", help="passage text column")
    parser.add_argument("--lang", default="en", help="ISO code of the passages' language")
    parser.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS, help="longest piece")
    parser.add_argument("--pause", type=float, default=0.2, help="silence between sentences (s)")
    parser.add_argument("--max-duration", type=float, default=None, help="drop longer passages")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16, float16, auto")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: CUDA if any)")
    parser.add_argument("--batch-size", type=int, default=8, help="sentences per generate call")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    synthesizer = SeamlessSynthesizer(
        args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size
    )
    report = resynthesize_sqa(
        args.input,
        args.output,
        synthesizer,
        audio_folder=args.audio_folder,
        speakers=args.speakers,
        seed=args.seed,
        text_column=args.text_column,
        lang=args.lang,
        max_chars=args.max_chars,
        pause=args.pause,
        max_duration=args.max_duration,
        settings={"model": args.model, "dtype": args.dtype},
    )
    print(json.dumps({k: report[k] for k in ("kept", "dropped", "output_rows")}))
    return report
