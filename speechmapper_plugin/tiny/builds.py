"""What the tiny offline model builders (``tiny_llm``, ``tiny_comet``, ``tiny_bertscore``,
``tiny_seamless``) share: a build keyed by its corpus and settings, reused when nothing
changed, otherwise made in a temporary folder and swapped in atomically, so an interrupted
build never leaves a half-written model behind.

Authors
-------
speechmapper developers, 2026
"""

import argparse
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from speechmapper_plugin.utils.files import write_json

logger = logging.getLogger(__name__)


def check_texts(texts, what):
    """The non-empty, stripped sentences of a training corpus (``what`` names the tokenizer).

    Example
    -------
    >>> check_texts([" the cat ", None, ""], "LLM")
    ['the cat']
    >>> check_texts([], "LLM")
    Traceback (most recent call last):
    ...
    ValueError: Cannot train the tiny LLM tokenizer: the text corpus is empty (give at least one non-empty sentence).
    """
    if isinstance(texts, str):
        raise TypeError(
            f"The tiny {what} builder needs a list of sentences as texts, not one string."
        )
    texts = [str(text).strip() for text in texts if text is not None]
    texts = [text for text in texts if text]
    if not texts:
        raise ValueError(
            f"Cannot train the tiny {what} tokenizer: the text corpus is empty "
            "(give at least one non-empty sentence)."
        )
    return texts


def train_unigram_spm(texts, vocab_size, path):
    """Trains a sentencepiece unigram model with the fairseq / XLM-R id layout and writes it.

    Ids ``<unk>``=0, ``<s>``=1, ``</s>``=2, then the pieces (no pad piece), as the
    ``sentencepiece.bpe.model`` of XLM-R and SeamlessM4T; characters absent from the corpus
    map to ``<unk>``.

    Arguments
    ---------
    texts : list of str
        Training sentences.
    vocab_size : int
        Maximum vocabulary size (not a hard limit).
    path : str or Path
        The model file written.

    Returns
    -------
    Path
        ``path``.

    Example
    -------
    >>> import tempfile, sentencepiece
    >>> model = train_unigram_spm(["the cat sat", "a dog ran"], 30, Path(tempfile.mkdtemp()) / "m")
    >>> sentencepiece.SentencePieceProcessor(model_file=str(model)).id_to_piece([0, 1, 2])
    ['<unk>', '<s>', '</s>']
    """
    import io

    import sentencepiece as spm

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=proto,
        vocab_size=int(vocab_size),
        model_type="unigram",
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    path = Path(path)
    path.write_bytes(proto.getvalue())
    return path


def build_key(texts, settings):
    """A digest of the corpus and the settings: a build is redone when it changes.

    Example
    -------
    >>> build_key(["a"], {"seed": 0}) == build_key(["a"], {"seed": 0}) != build_key(["b"], {})
    True
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def cached_build(folder, what, manifest_name, texts, settings, build, ready=None):
    """Build a tiny model into ``folder`` unless the same build (corpus and settings) is there.

    Arguments
    ---------
    folder : str or Path
        The model folder (created; must be empty or hold an earlier build of this kind).
    what : str
        What is built, for messages (e.g. ``"COMET model"``).
    manifest_name : str
        The file recording the build's key and settings in ``folder``.
    texts : list of str
        The corpus (part of the key).
    settings : dict
        JSON-serializable build settings (part of the key).
    build : callable
        ``build(tmp_folder)`` writes the model into a temporary folder.
    ready : str, optional
        A file of the build that must exist for it to be reused.

    Returns
    -------
    bool
        True when the model was built, False when the earlier build was reused.

    Example
    -------
    >>> folder = Path(tempfile.mkdtemp()) / "m"
    >>> write = lambda tmp: (tmp / "w.txt").write_text("x")
    >>> cached_build(folder, "demo", "build.json", ["a"], {}, write, ready="w.txt")
    True
    >>> cached_build(folder, "demo", "build.json", ["a"], {}, write, ready="w.txt")
    False
    """
    folder = Path(folder)
    key = build_key(texts, settings)
    manifest = folder / manifest_name
    if manifest.is_file():
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
        if previous.get("key") == key and (ready is None or (folder / ready).exists()):
            logger.debug("Reusing the tiny %s in %s", what, folder)
            return False
        logger.info("Rebuilding the tiny %s in %s (corpus or settings changed)", what, folder)
    elif folder.exists() and any(folder.iterdir()):
        raise FileExistsError(
            f"{folder} exists, is not empty and holds no tiny {what} build "
            f"({manifest_name} missing): give an empty or new folder."
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp_folder = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp"))
    try:
        build(tmp_folder)
        write_json(tmp_folder / manifest_name, {"key": key, "settings": settings})
        _make_readable(tmp_folder)
        _replace_folder(tmp_folder, folder)
    except BaseException:
        shutil.rmtree(tmp_folder, ignore_errors=True)
        raise
    logger.info("Built a tiny %s in %s", what, folder)
    return True


class seeded:
    """Context manager fixing torch's global seed and restoring the RNG state on exit.

    Example
    -------
    >>> with seeded(0):
    ...     a = torch.rand(1)
    >>> with seeded(0):
    ...     b = torch.rand(1)
    >>> bool(a == b)
    True
    """

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        self.state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        torch.random.set_rng_state(self.state)
        return False


def _make_readable(folder):
    """Gives the build the usual umask permissions (mkdtemp/mkstemp create 0700/0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.iterdir():
        if path.is_file():
            os.chmod(path, 0o666 & ~umask)


def _replace_folder(new_folder, output_folder):
    """Moves ``new_folder`` to ``output_folder``, replacing an older build if any."""
    if output_folder.exists():
        old = Path(tempfile.mkdtemp(dir=output_folder.parent, prefix=f".{output_folder.name}.old"))
        os.replace(output_folder, old / "build")
        os.replace(new_folder, output_folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new_folder, output_folder)


def read_text_file(path):
    """Reads one sentence per line (empty lines are skipped).

    Arguments
    ---------
    path : str or Path
        A UTF-8 text file.

    Returns
    -------
    list of str
        The sentences.

    Example
    -------
    >>> path = Path(tempfile.mkdtemp()) / "corpus.txt"
    >>> _ = path.write_text("the cat\\n\\nthe dog\\n")
    >>> read_text_file(path)
    ['the cat', 'the dog']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Text file {path} not found (one sentence per line expected).")
    with open(path, encoding="utf-8") as handle:
        texts = [line.strip() for line in handle]
    texts = [text for text in texts if text]
    if not texts:
        raise ValueError(f"Text file {path} holds no sentence.")
    return texts


def builder_cli(build, description, options, argv=None):
    """The command line of a tiny builder: ``--output_folder``, ``--text_file`` (repeatable,
    one sentence per line) and the builder's own ``options``.

    Arguments
    ---------
    build : callable
        ``build(output_folder, texts, **options)``.
    description : str
        The ``--help`` description.
    options : dict
        Option name -> ``argparse`` keyword arguments (``type``, ``default``, ``help``...).
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    What ``build`` returns.

    Example
    -------
    >>> corpus = Path(tempfile.mkdtemp()) / "c.txt"
    >>> _ = corpus.write_text("the cat\\nthe dog\\n")
    >>> builder_cli(lambda folder, texts, seed: (folder, texts, seed), "demo",
    ...             {"seed": {"type": int, "default": 0}},
    ...             ["--output_folder", "out", "--text_file", str(corpus), "--seed", "3"])
    ('out', ['the cat', 'the dog'], 3)
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output_folder", required=True, help="where to save the model")
    parser.add_argument(
        "--text_file", required=True, action="append", help="corpus, one sentence per line"
    )
    for name, kwargs in options.items():
        parser.add_argument(f"--{name}", **kwargs)
    args = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO)
    texts = [text for path in args.pop("text_file") for text in read_text_file(path)]
    return build(args.pop("output_folder"), texts, **args)
