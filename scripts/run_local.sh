#!/usr/bin/env bash
# `make run`: the whole DAG once through `airflow dags test`, embedded: Airflow's metadata in
# SQLite and MLflow's store (SQLite + local artifacts) under .local/, no servers, no Docker.
# SENTIMENT_LOCAL_STATE moves that state folder (tests/integration/test_embedded_run.py runs
# `make smoke` in a temporary one, never in the user's .local).
# Extra arguments go to `airflow dags test` (e.g. -c '{"sample_fraction": 0.1}').
# DAG=sentiment_score (`make score`) runs the scoring DAG instead, on the same embedded stores:
# it scores with the champion that `make run` left there.
set -euo pipefail
DAG=${DAG:-sentiment_retrain}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
STATE=${SENTIMENT_LOCAL_STATE:-$ROOT/.local}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

export AIRFLOW_HOME=${AIRFLOW_HOME:-$STATE/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}
export AIRFLOW__LOGGING__LOGGING_LEVEL=${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}
# The console shows each task's start, its stage's summary line and its result: Airflow's own
# bookkeeping (DAG parsing, serialisation, Execution API calls, XCom pushes, library
# deprecation warnings) is kept out, and with it the lines `dags test` printed twice.
export AIRFLOW__LOGGING__NAMESPACE_LEVELS=${AIRFLOW__LOGGING__NAMESPACE_LEVELS:-"airflow.dag_processing=WARNING airflow.serialization=WARNING airflow.models.dag=WARNING airflow.models.dagrun=WARNING airflow.api_fastapi=WARNING task=WARNING py.warnings=ERROR"}
export PYTHONPATH=$ROOT/include${PYTHONPATH:+:$PYTHONPATH}
export SENTIMENT_ARTIFACT_ROOT=${SENTIMENT_ARTIFACT_ROOT:-$STATE/artifacts}
# The package's default store (review_sentiment.config.default_tracking_uri) is .local's: name it
# here so that it follows the state folder.
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$STATE/mlflow/mlflow.db}
export TF_CPP_MIN_LOG_LEVEL=2
# MLflow's loggers through Airflow's logging (not a stderr handler of MLflow's own).
export MLFLOW_CONFIGURE_LOGGING=false
# No usage telemetry: no egress is needed, and it avoids a race in its client (see the stack's env file).
export MLFLOW_DISABLE_TELEMETRY=true
mkdir -p "$AIRFLOW_HOME"

if [ -z "${REVIEWS_PATH:-}" ]; then
  REVIEWS_PATH=$("$PY" -c 'from review_sentiment.config import Settings; print(Settings.from_env().reviews_path)')
fi
if [ ! -f "$REVIEWS_PATH" ]; then
  echo "WARNING: the review data set is not at $REVIEWS_PATH; running on SYNTHETIC reviews instead." >&2
  REVIEWS_PATH=$("$PY" -m review_sentiment synthesize --rows 3000 --output "$STATE/synthetic" | tail -1)
  # Template-made reviews are easy for every model, so the baseline would tie the grid: the
  # fallback is a plumbing run, and says so, rather than a quality bar.
  if [ $# -eq 0 ]; then
    set -- -c '{"beat_baseline": false}'
  fi
fi
export REVIEWS_PATH

"$PY" -m airflow db migrate >"$STATE/airflow-db-migrate.log" 2>&1 || { cat "$STATE/airflow-db-migrate.log" >&2; exit 1; }
started=$(date +%s)
"$PY" -m airflow dags test "$DAG" "$@"
echo "DAG run finished in $(( $(date +%s) - started )) s"
if [ "$DAG" = sentiment_retrain ]; then
  "$PY" -m review_sentiment champion
else
  "$PY" -m review_sentiment predictions
fi
