"""The report command line: result files -> tables in the papers' layouts (Markdown) and the
Hugging Face model-index metadata::

    python -m speechmapper_plugin.evaluation.report results/ --output report.md \
        --model-index model_card_meta.md --model-name my-speechmapper
    python -m speechmapper_plugin.evaluation.report results/noise_injection --layout noise

Authors
-------
speechmapper developers, 2026
"""

import argparse
import logging
import sys

from speechmapper_plugin.evaluation.model_index import model_card_metadata, model_index
from speechmapper_plugin.evaluation.noise_table import noise_tables
from speechmapper_plugin.evaluation.results import load_results
from speechmapper_plugin.evaluation.tables import IWSLT25_DATASETS, iwslt25_tables, markdown_tables
from speechmapper_plugin.utils.files import atomic_write_text

logger = logging.getLogger(__name__)


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m speechmapper_plugin.evaluation.report",
        description="Aggregate result files over seeds into Markdown tables (papers' layout) "
        "and, optionally, Hugging Face model-index metadata.",
    )
    parser.add_argument(
        "results", nargs="+", help="result files and/or folders (searched for *.json)"
    )
    parser.add_argument("--output", help="write the Markdown tables to this file too")
    parser.add_argument(
        "--metrics", nargs="+", help="report only these metrics (e.g. wer cer comet)"
    )
    parser.add_argument(
        "--sort-by-setting",
        action="store_true",
        help="order rows topline, baseline, zero-shot, in-domain (default: first appearance)",
    )
    parser.add_argument("--decimals", type=int, help="fixed number of decimals in cells")
    parser.add_argument(
        "--layout",
        choices=("papers", "iwslt25", "noise"),
        default="papers",
        help="papers: one table per task and metric (default); iwslt25: the IWSLT 2025 talk's "
        "table (ASR WER | BLEU | COMET | SQA per language) and its official-metrics table; "
        "noise: Table 6 of the SpeechMapper paper (noise-injection WER per degree and the EET)",
    )
    parser.add_argument(
        "--eet-margin",
        type=float,
        help="--layout noise: WER points above the clean WER still tolerated by the EET "
        "(default: the eet_margin the results were written with)",
    )
    parser.add_argument(
        "--system-order",
        nargs="+",
        help="--layout iwslt25 row order (default: the talk's rows, IWSLT25_SYSTEM_ORDER)",
    )
    parser.add_argument(
        "--splits", nargs="+", help="--layout iwslt25: only these splits (e.g. eval_asr test)"
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        metavar="TASK=DATASET",
        help="--layout iwslt25: the test set of a task's columns (default: asr=ACL6060 "
        "st=ACL6060 sqa=SpokenSQuAD), e.g. st=CoVoST2",
    )
    parser.add_argument(
        "--model-index", help="write model-card front matter (YAML model-index) to this file"
    )
    parser.add_argument("--model-name", help="model name for --model-index")
    parser.add_argument(
        "--system", help="the system described by --model-index (needed with several systems)"
    )
    return parser


def main(argv=None):
    """Command line: ``python -m speechmapper_plugin.evaluation.report RESULTS... [options]``.

    Prints the Markdown tables to stdout, writes them atomically to ``--output`` and, with
    ``--model-index FILE --model-name NAME [--system SYSTEM]``, writes the model-card front
    matter. Bad input (missing file, corrupt or invalid result, unknown metric or system)
    exits with status 2 and a message naming the problem.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.evaluation.results import make_result, write_result
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_result(folder, make_result("S", "Fleurs", "test", "asr", {"wer": 9.0}, []))
    >>> main([folder])
    ### ASR: WER (↓)
    <BLANKLINE>
    | System | Fleurs test |
    |---|---|
    | S | 9.0 |
    ...
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.model_index and not args.model_name:
        parser.error("--model-index needs --model-name (the model's name on the card).")
    if (args.model_name or args.system) and not args.model_index:
        parser.error("--model-name/--system only apply with --model-index FILE.")
    if args.layout != "papers" and (args.metrics or args.sort_by_setting):
        parser.error("--metrics/--sort-by-setting apply to --layout papers only.")
    if args.layout != "iwslt25" and (args.system_order or args.splits or args.datasets):
        parser.error("--system-order/--splits/--datasets apply to --layout iwslt25 only.")
    if args.layout != "noise" and args.eet_margin is not None:
        parser.error("--eet-margin applies to --layout noise only.")
    datasets = dict(IWSLT25_DATASETS)
    for item in args.datasets or ():
        task, _, name = item.partition("=")
        if task not in datasets or not name:
            parser.error(
                f"--datasets {item!r}: expected TASK=DATASET with TASK in {list(datasets)}."
            )
        datasets[task] = name
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        results = load_results(args.results)
        if not results:
            raise ValueError(
                f"no result files (JSON with a 'schema' key) found in: {' '.join(args.results)}"
            )
        if args.layout == "noise":
            text = noise_tables(results, decimals=args.decimals, eet_margin=args.eet_margin)
        elif args.layout == "iwslt25":
            text = iwslt25_tables(
                results,
                system_order=args.system_order,
                datasets=datasets,
                splits=args.splits,
                decimals=args.decimals,
            )
        else:
            text = markdown_tables(
                results,
                metrics=args.metrics,
                sort_by_setting=args.sort_by_setting,
                decimals=args.decimals,
            )
        index = None
        if args.model_index:
            index = model_index(results, args.model_name, system=args.system, metrics=args.metrics)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    sys.stdout.write(text)
    if args.output:
        atomic_write_text(args.output, text)
        logger.info("report: tables written to %s", args.output)
    if index is not None:
        atomic_write_text(args.model_index, model_card_metadata(index))
        logger.info("report: model-index written to %s", args.model_index)


if __name__ == "__main__":
    main()
