"""Shell entry point: every stage runs without Airflow.

    python -m review_sentiment <stage> --help

Each stage prints what it produced (a path, a run id, a version) as its last stdout line; on
bad input it exits non-zero with a one-line error on stderr. The defaults are the package's, the
ones the DAGs' params read: with no flags, a stage builds what a default DAG run builds.

One function per subcommand: ``_<name>_arguments`` declares its flags, ``_<name>`` runs it;
:data:`COMMANDS` lists them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from review_sentiment import cli_champion, housekeeping
from review_sentiment.config import (
    CHAMPION_ALIAS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_NONINFERIORITY_MARGIN,
    DEFAULT_PROMOTION_FLOOR,
    DEFAULT_SEQUENCE_LENGTH,
    Settings,
)
from review_sentiment.errors import GateRefused, PipelineError

if TYPE_CHECKING:
    from review_sentiment.cleaning_rules import PreprocessSettings

EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3
# The PreprocessSettings switches the CLI and the DAG's params expose (the DAG's PREPROCESS_PARAMS).
PREPROCESS_SWITCHES = {
    "keep_negations": "keep no/nor/not and the n't forms",
    "use_title": "prepend the review title to its text",
    "remove_stopwords": "drop NLTK's English stopwords",
}


def _grid(text: str) -> str | list[dict]:
    """A grid name, a JSON list, or a path to a JSON file."""
    if text.lstrip().startswith("["):
        return json.loads(text)
    if Path(text).is_file():
        return json.loads(Path(text).read_text())
    return text


def _ingest_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    from review_sentiment.validate import DEFAULT_MIN_ROWS

    p.add_argument(
        "--source",
        default=str(settings.reviews_path),
        help="CSV/Parquet path or postgresql://user@host:port/db?table=name (default: $REVIEWS_PATH)",
    )
    p.add_argument(
        "--start", type=cli_champion.timestamp, help="inclusive lower bound on ingested_at (ISO 8601)"
    )
    p.add_argument(
        "--end", type=cli_champion.timestamp, help="exclusive upper bound on ingested_at (ISO 8601)"
    )
    p.add_argument("--sample-fraction", type=float, default=1.0)
    p.add_argument("--min-rows", type=int, default=DEFAULT_MIN_ROWS)
    p.add_argument("--output", type=Path, required=True)


def _ingest(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.ingest import ingest

    snapshot = ingest(args.source, args.output, start=args.start, end=args.end,
                      sample_fraction=args.sample_fraction, min_rows=args.min_rows)  # fmt: skip
    return str(snapshot)


def _load_table_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--input", type=Path, default=settings.reviews_path)
    p.add_argument("--db", required=True, help="postgresql://user@host:port/db?table=reviews")


def _load_table(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.reviews_db import load_table

    return f"{load_table(args.input, args.db)} rows inserted or changed"


def _synthesize_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, required=True)


def _synthesize(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.synthetic import write_synthetic_csv

    return str(write_synthetic_csv(args.output / "synthetic_reviews.csv", args.rows, args.seed))


def _preprocess_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    from review_sentiment.cleaning_rules import PreprocessSettings

    defaults = {f.name: f.default for f in fields(PreprocessSettings)}
    p.add_argument("--input", type=Path, required=True, help="ingest's reviews.parquet")
    for name, help_text in PREPROCESS_SWITCHES.items():
        flag = "--" + name.replace("_", "-")
        p.add_argument(
            flag,
            action=argparse.BooleanOptionalAction,
            default=defaults[name],
            help=f"{help_text} (default: %(default)s)",
        )
    p.add_argument("--cache-dir", type=Path, help="clean only reviews not in this cache (kept between runs)")
    p.add_argument("--output", type=Path, required=True)


def preprocess_settings(args: argparse.Namespace) -> PreprocessSettings:
    """The ``PreprocessSettings`` the parsed ``preprocess`` flags ask for."""
    from review_sentiment.cleaning_rules import PreprocessSettings

    return PreprocessSettings(**{name: getattr(args, name) for name in PREPROCESS_SWITCHES})


def _preprocess(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.preprocess import preprocess

    return str(preprocess(args.input, args.output, preprocess_settings(args), cache_dir=args.cache_dir))


def _tokenize_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--input", type=Path, required=True, help="preprocess's reviews_clean.parquet")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    p.add_argument("--sequence-length", type=int, default=DEFAULT_SEQUENCE_LENGTH)
    p.add_argument("--output", type=Path, required=True)


def _tokenize(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.tokenize import tokenize

    manifest = tokenize(
        args.input, args.output, max_tokens=args.max_tokens, sequence_length=args.sequence_length
    )
    return str(manifest)


def _train_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--input", type=Path, required=True, help="tokenize's manifest.json")
    p.add_argument("--grid", type=_grid, default="default", help="grid name, JSON list or JSON file")
    p.add_argument("--point", type=int, help="train only this index of the grid")
    p.add_argument("--output", type=Path, required=True)


def _train(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.artifacts import write_json
    from review_sentiment.model import resolve_grid
    from review_sentiment.tracking import ensure_experiment
    from review_sentiment.train import train

    points = resolve_grid(args.grid)
    if args.point is not None:
        points = [points[args.point]]
    experiment_id = ensure_experiment(settings.experiment_name, settings.tracking_uri)
    run_ids = [
        train(args.input, p, experiment_id=experiment_id, tracking_uri=settings.tracking_uri) for p in points
    ]
    write_json(args.output / "runs.json", {"run_ids": run_ids})
    return ",".join(run_ids)


def _baseline_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--input", type=Path, required=True, help="tokenize's manifest.json")


def _baseline(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.baseline import train_baseline
    from review_sentiment.tracking import ensure_experiment

    experiment_id = ensure_experiment(settings.experiment_name, settings.tracking_uri)
    return train_baseline(args.input, experiment_id=experiment_id, tracking_uri=settings.tracking_uri)


def _register_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--input", type=Path, required=True, help="tokenize's manifest.json")
    p.add_argument("--runs", required=True, help="comma-separated MLflow run ids")
    p.add_argument("--baseline-run", help="the baseline's run id: the candidate must beat it")
    p.add_argument("--floor", type=float, default=DEFAULT_PROMOTION_FLOOR)
    p.add_argument("--pipeline-run-id", help="makes a repeated call for the same run a no-op")
    p.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    p.add_argument("--margin", type=float, default=DEFAULT_NONINFERIORITY_MARGIN,
                   help="non-inferiority margin: the 95%% CI lower bound of candidate - champion ROC AUC "
                   "must be above -MARGIN")  # fmt: skip
    p.add_argument("--output", type=Path, required=True)
    p.add_argument(
        "--snapshot",
        type=Path,
        help="ingest's reviews.parquet: its new reviews are checked for "
        "drift against the champion's; under the artifact root, it is tagged for later checks",
    )


def _register(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.artifacts import write_json
    from review_sentiment.gate import GatePolicy
    from review_sentiment.register import register

    result = register(
        args.runs.split(","), args.input, settings=settings, baseline_run_id=args.baseline_run,
        policy=GatePolicy(floor=args.floor, force=args.force, margin=args.margin),
        pipeline_run_id=args.pipeline_run_id, snapshot_path=args.snapshot,
    )  # fmt: skip
    write_json(args.output / "register.json", result.to_dict())
    if not result.promoted:
        raise GateRefused(f"version {result.version} registered but not promoted: {result.reason}")
    return f"{result.model_name} version {result.version} is {CHAMPION_ALIAS}"


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, its flags and what it runs (returns the product's line)."""

    help: str
    arguments: Callable[[argparse.ArgumentParser, Settings], None]
    run: Callable[[argparse.Namespace, Settings], str]


COMMANDS: dict[str, Command] = {
    "ingest": Command("read, validate and snapshot reviews", _ingest_arguments, _ingest),
    "load-table": Command(
        "create and upsert the reviews table from a file", _load_table_arguments, _load_table
    ),
    "synthesize": Command(
        "write a synthetic review file in the original schema", _synthesize_arguments, _synthesize
    ),
    "preprocess": Command(
        "clean texts: letters, lowercase, stems (no flags: as the DAG does)",
        _preprocess_arguments,
        _preprocess,
    ),
    "tokenize": Command("split and vectorise", _tokenize_arguments, _tokenize),
    "train": Command("train grid points, one MLflow run each; prints the run ids", _train_arguments, _train),
    "baseline": Command(
        "train the TF-IDF + logistic regression baseline; prints its run id", _baseline_arguments, _baseline
    ),
    "register": Command("register the best run; promote it through the gate", _register_arguments, _register),
    "champion": Command(
        "print the champion version, its test metrics and the MLflow UI command",
        cli_champion.champion_arguments,
        cli_champion.champion,
    ),
    "score": Command(
        "score reviews with the champion (resolved once); prints the summary",
        cli_champion.score_arguments,
        cli_champion.score,
    ),
    "predictions": Command(
        "summarise the newest predictions.parquet of sentiment_score",
        cli_champion.predictions_arguments,
        cli_champion.predictions,
    ),
    "history": Command(
        "print the champion ledger: every move of the alias, newest last",
        cli_champion.history_arguments,
        cli_champion.history,
    ),
    "rollback": Command(
        "move the champion back (default: to the previous one), recorded in the ledger",
        cli_champion.rollback_arguments,
        cli_champion.rollback,
    ),
    # Its flags and run live beside the pass (a light module).
    "housekeeping": Command(
        "delete old run folders, compact the cache, archive stale challengers (--dry-run: plan only)",
        housekeeping.cli_arguments,
        housekeeping.cli_run,
    ),
}


def parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The argument parser of every subcommand, with defaults from ``settings`` and the package."""
    settings = settings or Settings.from_env()
    top = argparse.ArgumentParser(prog="python -m review_sentiment", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="stage", required=True)
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help), settings)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one stage; return the process exit code."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        print(COMMANDS[args.stage].run(args, Settings.from_env()))
    except GateRefused as exc:
        print(f"gate refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (PipelineError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
