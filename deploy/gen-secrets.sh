#!/usr/bin/env bash
# Write a fresh .env for docker compose (and `make stack`): random secrets plus the few
# per-machine values compose needs. Refuses to overwrite an existing file unless --force.
#
#   deploy/gen-secrets.sh [--force] [--output PATH]     (default PATH: <repo>/.env)
#
# Passwords are hex (safe unquoted in URLs, env files, shells and psql); the Fernet key comes from
# the cryptography package. Environment overrides: AIRFLOW_ADMIN_USERNAME, SENTIMENT_DATA_DIR,
# PYTHON (the interpreter to use; default .venv/bin/python, else python3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$ROOT/.env
force=0

usage() { sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
  case $1 in
    -f | --force) force=1 ;;
    -o | --output)
      [ $# -ge 2 ] || { echo "gen-secrets: $1 needs a path" >&2; exit 2; }
      out=$2
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gen-secrets: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ -e "$out" ] && [ "$force" != 1 ]; then
  echo "gen-secrets: $out exists; not overwriting it (use --force to replace every secret in it)" >&2
  exit 1
fi

if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi

umask 077
tmp=$(mktemp "$(dirname "$out")/.env.gen.XXXXXX")
trap 'rm -f "$tmp"' EXIT

"$PYTHON" - "$ROOT" >"$tmp" <<'PY'
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet

root = Path(sys.argv[1])
# Same folder as review_sentiment.config.DEFAULT_REVIEWS_PATH.
data_dir = os.environ.get("SENTIMENT_DATA_DIR") or str((root.parent / "shared" / "data").resolve())
admin = os.environ.get("AIRFLOW_ADMIN_USERNAME") or "admin"


def password() -> str:
    return secrets.token_hex(24)


print(f"""\
# Written by deploy/gen-secrets.sh on {datetime.now(UTC):%Y-%m-%d %H:%M UTC}. Never commit this file.
# Read by docker compose (interpolation) and by `make stack`; non-secret settings are in
# deploy/airflow.env. Changing a *_DB_PASSWORD after the first start needs ALTER ROLE or a fresh
# postgres volume (docker compose down -v); see deploy/postgres/init-databases.sh.

# PostgreSQL superuser, and the login roles of the two databases.
POSTGRES_PASSWORD={password()}
AIRFLOW_DB_PASSWORD={password()}
MLFLOW_DB_PASSWORD={password()}

# Airflow UI login (also Flower's basic auth with the celery profile).
AIRFLOW_ADMIN_USERNAME={admin}
AIRFLOW_ADMIN_PASSWORD={password()}

# MLflow's optional basic auth (compose -f deploy/mlflow/basic-auth.yaml); unused otherwise.
MLFLOW_ADMIN_USERNAME=mlflow-admin
MLFLOW_ADMIN_PASSWORD={password()}
MLFLOW_FLASK_SERVER_SECRET_KEY={secrets.token_urlsafe(48)}

# Fernet key and API secret key: every Airflow component. JWT secret: the API server and the
# scheduler only (docker-compose.yaml gives it to no other service).
AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}
AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(48)}
AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(48)}

# Host folder holding womens_clothing_reviews.csv.gz, mounted read-only at /opt/airflow/data.
SENTIMENT_DATA_DIR={data_dir}

# LocalExecutor runs tasks in the scheduler. For Celery (redis, airflow-worker, flower) use:
#   COMPOSE_PROFILES=celery
#   AIRFLOW__CORE__EXECUTOR=CeleryExecutor
AIRFLOW__CORE__EXECUTOR=LocalExecutor
""")
PY

chmod 600 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "gen-secrets: wrote $out"
