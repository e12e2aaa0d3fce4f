#!/usr/bin/env bash
# The one-shot airflow-init job (docker compose; usable by `make stack` too):
#   1. migrates the metadata database, failing the job on error (the image's own
#      _AIRFLOW_DB_MIGRATE ignores a failed migration);
#   2. makes the UI login the one in .env: with SimpleAuthManager (Airflow 3.3's default) users
#      come from [core] simple_auth_manager_users and their passwords from a JSON file that the
#      API server only ever adds generated passwords to; this sets AIRFLOW_ADMIN_USERNAME's entry;
#   3. warns when the review file is missing (the DAG can still read a PostgreSQL table that holds
#      rows; reviews-loader cannot fill the stack's `reviews` table without the file).
set -euo pipefail

: "${AIRFLOW_ADMIN_USERNAME:?AIRFLOW_ADMIN_USERNAME is not set}"
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is not set}"

echo "airflow-init: airflow db migrate"
airflow db migrate

python - <<'PY'
import json
import os
import sys
from pathlib import Path

from airflow.configuration import conf

auth_manager = conf.get("core", "auth_manager")
if not auth_manager.endswith(".SimpleAuthManager"):
    print(f"airflow-init: auth manager is {auth_manager}; no SimpleAuthManager password file written")
    sys.exit(0)

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

user = os.environ["AIRFLOW_ADMIN_USERNAME"]
if user not in {u.username for u in SimpleAuthManager.get_users()}:
    sys.exit(f"airflow-init: {user!r} is not in [core] simple_auth_manager_users")

path = Path(SimpleAuthManager.get_generated_password_file())
path.parent.mkdir(parents=True, exist_ok=True)
passwords = json.loads(path.read_text() or "{}") if path.exists() else {}
passwords[user] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
tmp = path.with_name(f".{path.name}.tmp")
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(json.dumps(passwords) + "\n")
tmp.replace(path)
print(f"airflow-init: login for {user!r} written to {path}")
PY

if [ -n "${REVIEWS_PATH:-}" ] && [ ! -r "$REVIEWS_PATH" ]; then
  echo "airflow-init: WARNING: no review file at $REVIEWS_PATH (set SENTIMENT_DATA_DIR in .env);" \
    "reviews-loader cannot fill the reviews table, and sentiment_retrain will fail at ingest" \
    "unless its source is a table that holds rows." >&2
fi
echo "airflow-init: done (executor: ${AIRFLOW__CORE__EXECUTOR:-LocalExecutor})"
