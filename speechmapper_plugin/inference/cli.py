"""The ``speechmapper`` console command, built on ``pretrained.SpeechMapperLLM``.

::

    speechmapper transcribe a.flac b.wav --model MODEL
    speechmapper translate a.flac --model MODEL --lang de
    speechmapper ask a.flac --model MODEL --question "Who is speaking?"
    speechmapper export TRAIN_FOLDER OUT_FOLDER [--feature-config CACHE] [--set KEY=VALUE]
        [--results RESULTS...] [--model-name NAME] [--repo-id ID] [--license LICENSE]
    speechmapper push OUT_FOLDER REPO_ID [--private] [--revision BRANCH]
    speechmapper report ...            (forwarded to speechmapper_plugin.evaluation.report)

``MODEL`` is a published folder, a training output folder (exported on the fly to
``--savedir``, default ``<folder>/published``) or a hub id. Answers are printed one line per
file, ``path<TAB>text``; runs of whitespace inside an answer (newlines and tabs included)
become one space. Bad input (a missing audio file or a folder, an unknown language or key, a
hub id that is not downloaded...) exits with status 2 and a message on stderr. A file whose
speech vectors + prompt + ``--max-new-tokens`` exceed the LLM's positions
(``max_position_embeddings``) is refused before anything is decoded, with the longest duration
that fits: cut it into pieces of at most that length. ``--precision bf16`` runs the projector
and the LLM under autocast, as ``--precision=bf16`` does in training (the SFM encoder runs as
at extraction).

Authors
-------
speechmapper developers, 2026
"""

import argparse
import logging
import os
import sys

EXIT_BAD_INPUT = 2


class _BadInput(Exception):
    """An error in the command line or its files, reported without a traceback."""


def _add_model_options(parser):
    parser.add_argument("audio", nargs="+", metavar="AUDIO", help="audio file(s)")
    parser.add_argument(
        "--model",
        required=True,
        help="published folder, training output folder or hub id",
    )
    parser.add_argument(
        "--savedir",
        default=None,
        help="where a training folder is exported (default <folder>/published), or where "
        "the files of a published model are linked",
    )
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: auto)")
    parser.add_argument(
        "--precision",
        default=None,
        choices=["fp32", "bf16", "fp16"],
        help="autocast precision of the projector and the LLM, as --precision in training "
        "(default fp32)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="files decoded together")
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="default: the model's (150)"
    )


def build_parser():
    """The argument parser of the ``speechmapper`` command.

    Returns
    -------
    argparse.ArgumentParser

    Example
    -------
    >>> args = build_parser().parse_args(["translate", "a.wav", "--model", "m", "--lang", "de"])
    >>> args.command, args.audio, args.lang
    ('translate', ['a.wav'], 'de')
    """
    parser = argparse.ArgumentParser(
        prog="speechmapper",
        description="Speech + instruction -> text with a trained SpeechMapper projector and "
        "its frozen LLM.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub = commands.add_parser("transcribe", help="transcribe audio (zero-shot ASR prompt)")
    _add_model_options(sub)

    sub = commands.add_parser("translate", help="translate speech into --lang")
    _add_model_options(sub)
    sub.add_argument("--lang", required=True, help="target language code (de, es, fr, it, zh)")

    sub = commands.add_parser("ask", help="answer a question about the audio")
    _add_model_options(sub)
    sub.add_argument("--question", required=True, help="the question")

    sub = commands.add_parser("export", help="publish a training output folder")
    sub.add_argument("train_folder", metavar="TRAIN_FOLDER")
    sub.add_argument("out_folder", metavar="OUT_FOLDER")
    sub.add_argument(
        "--feature-config",
        default=None,
        help="feature cache folder or its cache.json, when the run's feature_folder is not "
        "reachable",
    )
    sub.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a top-level key of the published hyperparams.yaml (YAML value), e.g. "
        "--set llm_source=meta-llama/Llama-3.1-8B-Instruct",
    )

    sub.add_argument(
        "--results",
        nargs="+",
        default=None,
        metavar="RESULTS",
        help="result files/folders for the model card's evaluation results (default: the "
        "training folder's results/)",
    )
    sub.add_argument("--model-name", default=None, help="name on the model card")
    sub.add_argument("--repo-id", default=None, help="hub repository of the card's usage snippet")
    sub.add_argument("--license", default="apache-2.0", help="license of the model card")
    sub.add_argument("--system", default=None, help="system of the result files the card describes")

    sub = commands.add_parser(
        "push", help="upload a published folder to the Hugging Face hub (upload_folder)"
    )
    sub.add_argument("folder", metavar="FOLDER")
    sub.add_argument("repo_id", metavar="REPO_ID", help="namespace/name")
    sub.add_argument("--private", action="store_true", help="create a private repository")
    sub.add_argument("--revision", default=None, help="branch to push to")
    sub.add_argument("--token", default=None, help="hub token (default: the logged-in user's)")
    sub.add_argument("--message", default=None, help="commit message")

    sub = commands.add_parser(
        "report", help="evaluation report (speechmapper_plugin.evaluation.report)"
    )
    sub.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the report command")
    return parser


def _one_line(text):
    """The answer on one line: runs of whitespace (newlines, tabs...) become one space."""
    return " ".join(text.split())


def _parse_sets(items):
    from ruamel.yaml import YAML

    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _BadInput(f"--set expects KEY=VALUE, got {item!r}.")
        values[key.strip()] = YAML(typ="safe").load(value) if value else None
    return values


def _run_model_command(args):
    from speechmapper_plugin.features.audio import AudioError
    from speechmapper_plugin.inference.pretrained import load_model
    from speechmapper_plugin.models.frozen_llm import InputTooLong

    folders = [path for path in args.audio if os.path.isdir(path)]
    if folders:
        raise _BadInput(
            f"{', '.join(folders)} is a folder, not an audio file: give the audio files in it "
            f"(e.g. {os.path.join(folders[0], '*.flac')})."
        )
    missing = [path for path in args.audio if not os.path.isfile(path)]
    if missing:
        raise _BadInput(f"audio file not found: {', '.join(missing)}")
    if args.batch_size < 1:
        raise _BadInput(f"--batch-size must be >= 1, got {args.batch_size}.")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise _BadInput(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}.")
    run_opts = {"device": args.device, "precision": args.precision}
    kwargs = {"run_opts": {k: v for k, v in run_opts.items() if v}}
    try:
        model = load_model(args.model, savedir=args.savedir, **kwargs)
    except (OSError, ValueError) as err:  # missing/incomplete model, unreachable hub id
        raise _BadInput(str(err)) from err
    try:
        if args.command == "transcribe":
            instruction = model.asr_prompt()
        elif args.command == "translate":
            instruction = model.st_prompt(args.lang)
        else:
            instruction = model.sqa_prompt(args.question)
    except ValueError as err:
        raise _BadInput(str(err)) from err
    try:
        answers = model.generate_files(
            args.audio,
            instruction,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
        )
    except (AudioError, InputTooLong) as err:  # unreadable, or longer than the LLM's positions
        raise _BadInput(str(err)) from err
    for path, text in zip(args.audio, answers):
        print(f"{path}\t{_one_line(text)}", flush=True)
    return 0


def _run_export(args):
    from speechmapper_plugin.inference.export import export_model

    overrides = _parse_sets(args.set)
    try:
        out = export_model(
            args.train_folder,
            args.out_folder,
            feature_config=args.feature_config,
            overrides=overrides,
            results=args.results,
            model_name=args.model_name,
            repo_id=args.repo_id,
            license=args.license,
            system=args.system,
        )
    except (FileNotFoundError, ValueError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        raise _BadInput(message) from err
    print(out)
    return 0


def _run_push(args):
    from speechmapper_plugin.inference.publish import push_model

    try:
        info = push_model(
            args.folder,
            args.repo_id,
            private=args.private,
            token=args.token,
            revision=args.revision,
            commit_message=args.message,
        )
    except (FileNotFoundError, ValueError) as err:
        raise _BadInput(str(err)) from err
    print(getattr(info, "commit_url", None) or f"https://huggingface.co/{args.repo_id}")
    return 0


def _run_report(argv):
    try:
        from speechmapper_plugin.evaluation import report
    except ImportError as err:
        print(
            f"speechmapper: error: the report command is not available ({err}).",
            file=sys.stderr,
        )
        return 1
    try:
        status = report.main(argv)
    except SystemExit as exit_:  # its argparse errors and --help
        status = exit_.code
    if isinstance(status, str):  # sys.exit("message")
        print(status, file=sys.stderr)
        return 1
    return 0 if status is None else int(status)


def main(argv=None):
    """Runs the ``speechmapper`` command.

    Arguments
    ---------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 on bad input (the message is on stderr).

    Example
    -------
    >>> main(["translate", "missing.wav", "--model", "m", "--lang", "de"])
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":  # everything after it belongs to the report command
        return _run_report(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or an argparse usage error (2)
        return int(exit_.code or 0)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(name)s - %(message)s",
        )
    try:
        if args.command == "export":
            return _run_export(args)
        if args.command == "push":
            return _run_push(args)
        return _run_model_command(args)
    except _BadInput as err:
        print(f"speechmapper {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
