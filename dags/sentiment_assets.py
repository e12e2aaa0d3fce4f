"""The Airflow Assets of the sentiment DAGs, made in this one place (their names and URIs are in
``review_sentiment.names``) and imported by both DAG files.

* ``CHAMPION``: the registered model's champion. ``sentiment_retrain``'s ``promote`` and
  ``sentiment_rollback``'s ``rollback`` emit an event on it, through the alias ``CHAMPION_MOVED``,
  only when they moved the alias; the event's extra holds the new version. ``sentiment_score`` is
  scheduled on it (or daily).
* ``REVIEWS``: the default reviews source (``SENTIMENT_SOURCE``), an inlet of the tasks that read it.
* ``PREDICTIONS``: where ``sentiment_score`` writes (``SENTIMENT_PREDICTIONS``), its outlet.

Not a DAG file (see .airflowignore); environment only, no look-ups, at parse time.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

from review_sentiment import names
from review_sentiment.config import PREDICTIONS_PARQUET, SCORE_DAG_ID, Settings

_SETTINGS = Settings.from_env()

CHAMPION = Asset(name=names.ASSET_CHAMPION, uri=names.champion_asset_uri(_SETTINGS.model_name))
# An Asset outlet gets an event whenever its task succeeds; an alias outlet only gets the events
# the task adds to it, so promote adds one only when the champion moved.
CHAMPION_MOVED = AssetAlias(name=names.ASSET_CHAMPION_ALIAS)
REVIEWS = Asset(name=names.ASSET_REVIEWS, uri=names.source_asset_uri(_SETTINGS.source))
PREDICTIONS = Asset(
    name=names.ASSET_PREDICTIONS,
    uri=names.source_asset_uri(
        str(_SETTINGS.artifact_root / SCORE_DAG_ID)
        if _SETTINGS.predictions == PREDICTIONS_PARQUET
        else _SETTINGS.predictions
    ),
)
