"""OpenLineage dataset names for what the stages read and write, by the OpenLineage naming spec
(https://openlineage.io/docs/spec/naming), so that the events of one DAG run join into a chain:
review source -> snapshot -> cleaned reviews -> manifest (the splits) -> MLflow runs -> model
version -> the champion alias.

* a file: namespace ``file``, name its absolute path;
* a PostgreSQL table: namespace ``postgres://<host>:<port>``, name ``<database>.<schema>.<table>``
  (schema ``public`` when the source names none); never a user or password;
* MLflow (the spec has no entry for it): namespace the tracking URI without credentials, query or
  fragment (``http://mlflow:5000``), name MLflow's own URI of the thing: ``runs:/<run id>`` for a
  training run, ``models:/<model>/<version>`` for a model version, ``models:/<model>@<alias>`` for
  an alias, as ``mlflow.pyfunc.load_model`` takes them.

Plain Python (no Airflow, no OpenLineage client): the DAG helper turns these pairs into the
provider's datasets.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit, urlunsplit

from review_sentiment.sources import DEFAULT_TABLE, is_postgres_source

MLFLOW_PREFIXES = ("models:/", "runs:/")
DEFAULT_PG_PORT = 5432
DEFAULT_SCHEMA = "public"


class Dataset(NamedTuple):
    """One OpenLineage dataset's identity."""

    namespace: str
    name: str


def file_dataset(path: str | Path) -> Dataset:
    """A local file or folder: namespace ``file``, name its absolute path (not resolved through
    symlinks, so a producer and its consumer name the same path the same way)."""
    return Dataset("file", str(Path(path).absolute()))


def table_dataset(url: str) -> Dataset:
    """A ``postgresql://user:pw@host:port/db?table=[schema.]table`` source or target."""
    parts = urlsplit(url)
    table = parse_qs(parts.query).get("table", [DEFAULT_TABLE])[-1]
    schema, _, name = table.rpartition(".")
    database = parts.path.lstrip("/")
    return Dataset(
        f"postgres://{parts.hostname or 'localhost'}:{parts.port or DEFAULT_PG_PORT}",
        f"{database}.{schema or DEFAULT_SCHEMA}.{name}",
    )


def mlflow_namespace(tracking_uri: str) -> str:
    """The tracking URI without user, password, query or fragment: where the registry lives."""
    parts = urlsplit(tracking_uri)
    if not parts.netloc:  # a local store (sqlite:///..., a path): urlunsplit would drop its "//"
        return tracking_uri.split("?", 1)[0].split("#", 1)[0]
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def dataset_of(ref: str | Path, tracking_uri: str) -> Dataset:
    """The dataset a stage names by ``ref``: an MLflow URI (``runs:/``, ``models:/``), a
    PostgreSQL URL, or else a file path."""
    text = str(ref)
    if text.startswith(MLFLOW_PREFIXES):
        return Dataset(mlflow_namespace(tracking_uri), text)
    if is_postgres_source(text):
        return table_dataset(text)
    return file_dataset(text)
