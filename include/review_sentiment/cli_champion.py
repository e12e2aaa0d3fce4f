"""The champion's subcommands of ``python -m review_sentiment``: ``champion``, ``score``,
``predictions``, ``history`` and ``rollback`` (:data:`review_sentiment.cli.COMMANDS` lists them).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from review_sentiment.config import DEFAULT_SCORE_CHUNK_ROWS, Settings


def timestamp(text: str) -> datetime:
    """An ISO date or time; a naive one is local time."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.astimezone()


def champion_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    """No flags: the champion of ``settings.model_name``."""


def champion(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.versions import describe_champion

    return describe_champion(settings.tracking_uri, settings.model_name)


def score_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument(
        "--source", default=str(settings.reviews_path), help="CSV/Parquet path or postgresql://...?table="
    )
    p.add_argument("--start", type=timestamp, help="table sources: inclusive lower bound on ingested_at")
    p.add_argument("--end", type=timestamp, help="table sources: exclusive upper bound on ingested_at")
    p.add_argument(
        "--target", default="parquet", help="parquet, or postgresql://...?table=review_predictions"
    )
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_SCORE_CHUNK_ROWS)
    p.add_argument(
        "--output", type=Path, required=True, help="folder of predictions.parquet (a parquet target)"
    )


def score(args: argparse.Namespace, settings: Settings) -> str:
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


def predictions_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--file", type=Path, help="this file instead of the newest under the artifact root")


def predictions(args: argparse.Namespace, settings: Settings) -> str:
    import pandas as pd

    from review_sentiment.config import SCORE_DAG_ID
    from review_sentiment.layout import PREDICTIONS_NAME

    path = args.file
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


def history_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    """No flags: the champion ledger of ``settings.model_name``."""


def history(args: argparse.Namespace, settings: Settings) -> str:
    from review_sentiment.ledger import history
    from review_sentiment.tracking import client

    return history(client(settings.tracking_uri), settings.model_name)


def rollback_arguments(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--to", help="the version to restore (default: the champion before the current one)")
    p.add_argument("--reason", required=True, help="why; recorded in the champion ledger")
    p.add_argument(
        "--force", action="store_true", help="also to an archived, never-passed or smoke-failed version"
    )


def rollback(args: argparse.Namespace, settings: Settings) -> str:
    import getpass

    from review_sentiment.rollback import rollback

    return rollback(args.to, args.reason, settings=settings, force=args.force, by=getpass.getuser()).summary()
