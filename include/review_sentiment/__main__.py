"""Shell entry point: every stage runs without Airflow.

    python -m review_sentiment <stage> --help

Each stage prints what it produced (a path, a run id, a version) as its last stdout line; on
bad input it exits non-zero with a one-line error on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from pathlib import Path

from review_sentiment.config import (
    CHAMPION_ALIAS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMOTION_FLOOR,
    DEFAULT_SEQUENCE_LENGTH,
    Settings,
)
from review_sentiment.errors import GateRefused, PipelineError

EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.astimezone()


def _grid(text: str) -> str | list[dict]:
    """A grid name, a JSON list, or a path to a JSON file."""
    if text.lstrip().startswith("["):
        return json.loads(text)
    if Path(text).is_file():
        return json.loads(Path(text).read_text())
    return text


def _parser() -> argparse.ArgumentParser:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m review_sentiment", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)

    p = sub.add_parser("ingest", help="read, validate and snapshot reviews")
    p.add_argument(
        "--source",
        default=str(settings.reviews_path),
        help="CSV/Parquet path or postgresql://user@host:port/db?table=name (default: $REVIEWS_PATH)",
    )
    p.add_argument("--start", type=_timestamp, help="inclusive lower bound on ingested_at (ISO 8601)")
    p.add_argument("--end", type=_timestamp, help="exclusive upper bound on ingested_at (ISO 8601)")
    p.add_argument("--sample-fraction", type=float, default=1.0)
    p.add_argument("--min-rows", type=int, default=200)
    p.add_argument("--output", type=Path, required=True)

    p = sub.add_parser("load-table", help="create and upsert the reviews table from a file")
    p.add_argument("--input", type=Path, default=settings.reviews_path)
    p.add_argument("--db", required=True, help="postgresql://user@host:port/db?table=reviews")

    p = sub.add_parser("synthesize", help="write a synthetic review file in the original schema")
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, required=True)

    p = sub.add_parser("preprocess", help="clean texts: letters, lowercase, stopwords, stems")
    p.add_argument("--input", type=Path, required=True, help="ingest's reviews.parquet")
    p.add_argument("--keep-negations", action="store_true")
    p.add_argument("--use-title", action="store_true")
    p.add_argument("--keep-stopwords", action="store_true", help="do not drop NLTK's stopwords")
    p.add_argument("--cache-dir", type=Path, help="clean only reviews not in this cache (kept between runs)")
    p.add_argument("--output", type=Path, required=True)

    p = sub.add_parser("tokenize", help="split and vectorise")
    p.add_argument("--input", type=Path, required=True, help="preprocess's reviews_clean.parquet")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    p.add_argument("--sequence-length", type=int, default=DEFAULT_SEQUENCE_LENGTH)
    p.add_argument("--output", type=Path, required=True)

    p = sub.add_parser("train", help="train grid points, one MLflow run each; prints the run ids")
    p.add_argument("--input", type=Path, required=True, help="tokenize's manifest.json")
    p.add_argument("--grid", type=_grid, default="default", help="grid name, JSON list or JSON file")
    p.add_argument("--point", type=int, help="train only this index of the grid")
    p.add_argument("--output", type=Path, required=True)

    p = sub.add_parser("baseline", help="train the TF-IDF + logistic regression baseline; prints its run id")
    p.add_argument("--input", type=Path, required=True, help="tokenize's manifest.json")

    p = sub.add_parser("register", help="register the best run; promote it through the gate")
    p.add_argument("--input", type=Path, required=True, help="tokenize's manifest.json")
    p.add_argument("--runs", required=True, help="comma-separated MLflow run ids")
    p.add_argument("--baseline-run", help="the baseline's run id: the candidate must beat it")
    p.add_argument("--floor", type=float, default=DEFAULT_PROMOTION_FLOOR)
    p.add_argument("--pipeline-run-id", help="makes a repeated call for the same run a no-op")
    p.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    p.add_argument("--output", type=Path, required=True)

    sub.add_parser("champion", help="print the champion version, its test metrics and the MLflow UI command")

    p = sub.add_parser("score", help="score reviews with the champion (resolved once); prints the summary")
    p.add_argument(
        "--source", default=str(settings.reviews_path), help="CSV/Parquet path or postgresql://...?table="
    )
    p.add_argument("--start", type=_timestamp, help="table sources: inclusive lower bound on ingested_at")
    p.add_argument("--end", type=_timestamp, help="table sources: exclusive upper bound on ingested_at")
    p.add_argument(
        "--target", default="parquet", help="parquet, or postgresql://...?table=review_predictions"
    )
    p.add_argument("--chunk-rows", type=int, default=50_000)
    p.add_argument(
        "--output", type=Path, required=True, help="folder of predictions.parquet (a parquet target)"
    )

    p = sub.add_parser("predictions", help="summarise the newest predictions.parquet of sentiment_score")
    p.add_argument("--file", type=Path, help="this file instead of the newest under the artifact root")
    return parser


def _run(args: argparse.Namespace) -> str:
    settings = Settings.from_env()
    if args.stage == "ingest":
        from review_sentiment.ingest import ingest

        return str(
            ingest(
                args.source,
                args.output,
                start=args.start,
                end=args.end,
                sample_fraction=args.sample_fraction,
                min_rows=args.min_rows,
            )
        )
    if args.stage == "load-table":
        from review_sentiment.ingest import load_table

        return f"{load_table(args.input, args.db)} rows inserted or changed"
    if args.stage == "synthesize":
        from review_sentiment.synthetic import write_synthetic_csv

        return str(write_synthetic_csv(args.output / "synthetic_reviews.csv", args.rows, args.seed))
    if args.stage == "preprocess":
        from review_sentiment.preprocess import PreprocessSettings, preprocess

        prep = PreprocessSettings(
            keep_negations=args.keep_negations,
            use_title=args.use_title,
            remove_stopwords=not args.keep_stopwords,
        )
        return str(preprocess(args.input, args.output, prep, cache_dir=args.cache_dir))
    if args.stage == "tokenize":
        from review_sentiment.tokenize import tokenize

        return str(
            tokenize(
                args.input, args.output, max_tokens=args.max_tokens, sequence_length=args.sequence_length
            )
        )
    if args.stage == "train":
        from review_sentiment.artifacts import write_json
        from review_sentiment.model import resolve_grid
        from review_sentiment.tracking import ensure_experiment
        from review_sentiment.train import train

        points = resolve_grid(args.grid)
        if args.point is not None:
            points = [points[args.point]]
        experiment_id = ensure_experiment(settings.experiment_name, settings.tracking_uri)
        run_ids = [
            train(args.input, p, experiment_id=experiment_id, tracking_uri=settings.tracking_uri)
            for p in points
        ]
        write_json(args.output / "runs.json", {"run_ids": run_ids})
        return ",".join(run_ids)
    if args.stage == "baseline":
        from review_sentiment.baseline import train_baseline
        from review_sentiment.tracking import ensure_experiment

        experiment_id = ensure_experiment(settings.experiment_name, settings.tracking_uri)
        return train_baseline(args.input, experiment_id=experiment_id, tracking_uri=settings.tracking_uri)
    if args.stage == "register":
        from review_sentiment.artifacts import write_json
        from review_sentiment.gate import GatePolicy
        from review_sentiment.register import register

        result = register(
            args.runs.split(","),
            args.input,
            settings=settings,
            policy=GatePolicy(floor=args.floor, force=args.force),
            baseline_run_id=args.baseline_run,
            pipeline_run_id=args.pipeline_run_id,
        )
        write_json(args.output / "register.json", result.to_dict())
        if not result.promoted:
            raise GateRefused(f"version {result.version} registered but not promoted: {result.reason}")
        return f"{result.model_name} version {result.version} is {CHAMPION_ALIAS}"
    if args.stage == "champion":
        from review_sentiment.versions import describe_champion

        return describe_champion(settings.tracking_uri, settings.model_name)
    if args.stage == "score":
        return _score(args, settings)
    if args.stage == "predictions":
        return _predictions(args.file, settings)
    raise AssertionError(args.stage)


def _score(args: argparse.Namespace, settings: Settings) -> str:
    from datetime import UTC

    from review_sentiment.batch_score import NoChampion, Window, resolve_champion, score_reviews
    from review_sentiment.errors import ConfigError
    from review_sentiment.layout import PREDICTIONS_NAME

    champion = resolve_champion(settings)
    if isinstance(champion, NoChampion):
        raise ConfigError(champion.reason)
    window = None
    if args.start or args.end:
        start = args.start or datetime.min.replace(tzinfo=UTC)
        window = Window(start, args.end or datetime.now(UTC), "given on the command line")
    result = score_reviews(
        args.source, champion, window=window, target=args.target, output_path=args.output / PREDICTIONS_NAME,
        dag_run_id="cli", tracking_uri=settings.tracking_uri, chunk_rows=args.chunk_rows,
    )  # fmt: skip
    return result.summary()


def _predictions(path: Path | None, settings: Settings) -> str:
    import pandas as pd

    from review_sentiment.config import SCORE_DAG_ID
    from review_sentiment.layout import PREDICTIONS_NAME

    if path is None:
        found = sorted((settings.artifact_root / SCORE_DAG_ID).glob(f"*/*/{PREDICTIONS_NAME}"),
                       key=lambda p: p.stat().st_mtime)  # fmt: skip
        if not found:
            raise FileNotFoundError(f"no {PREDICTIONS_NAME} under {settings.artifact_root / SCORE_DAG_ID}")
        path = found[-1]
    frame = pd.read_parquet(path)
    versions = ", ".join(
        f"v{v}: {n:,}" for v, n in frame["model_version"].value_counts().sort_index().items()
    )
    recommended = frame["label"].mean() if len(frame) else float("nan")
    return (
        f"{path}\n{len(frame):,} predictions ({versions or 'none'}); {recommended:.1%} labelled recommended; "
        f"run {frame['dag_run_id'].iloc[0] if len(frame) else '-'}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one stage; return the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        print(_run(args))
    except GateRefused as exc:
        print(f"gate refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (PipelineError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
