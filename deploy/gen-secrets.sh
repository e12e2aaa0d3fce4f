#!/usr/bin/env bash
# Write a fresh .env for docker compose (and `make stack`): random secrets plus the few
# per-machine values compose needs. Refuses to overwrite an existing file unless --force;
# --add-missing instead appends only what an existing file lacks (a secret added since it was
# written, e.g. REVIEWS_DB_PASSWORD), keeping every value it has (or writes a fresh file).
#
#   deploy/gen-secrets.sh [--force | --add-missing] [--output PATH]     (default PATH: <repo>/.env)
#
# Passwords are hex (safe unquoted in URLs, env files, shells and psql); the Fernet key is 32
# random bytes, urlsafe base64 (Fernet's format). Needs only a Python 3.9+ standard library (run
# with -S, no packages). Environment overrides: AIRFLOW_ADMIN_USERNAME, SENTIMENT_DATA_DIR,
# PYTHON (the interpreter to use; default python3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$ROOT/.env
force=0
add_missing=0

usage() { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
  case $1 in
    -f | --force) force=1 ;;
    -a | --add-missing) add_missing=1 ;;
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

if [ "$force" = 1 ] && [ "$add_missing" = 1 ]; then
  echo "gen-secrets: --force and --add-missing exclude each other" >&2
  exit 2
fi
if [ -e "$out" ] && [ "$force" != 1 ] && [ "$add_missing" != 1 ]; then
  echo "gen-secrets: $out exists; not overwriting it (use --add-missing to add only the secrets it" \
    "lacks, or --force to replace every secret in it)" >&2
  exit 1
fi
existing=
if [ "$add_missing" = 1 ] && [ -e "$out" ]; then
  existing=$out
fi

PYTHON=${PYTHON:-python3}

umask 077
tmp=$(mktemp "$(dirname "$out")/.env.gen.XXXXXX")
trap 'rm -f "$tmp"' EXIT

"$PYTHON" -S - "$ROOT" "$existing" >"$tmp" <<'PY'
import base64
import os
import re
import secrets
import sys
import time
from pathlib import Path

root = Path(sys.argv[1])
existing = Path(sys.argv[2]) if sys.argv[2] else None
# Same folder as review_sentiment.config.DEFAULT_REVIEWS_PATH.
data_dir = os.environ.get("SENTIMENT_DATA_DIR") or str((root / "data").resolve())
admin = os.environ.get("AIRFLOW_ADMIN_USERNAME") or "admin"


def password() -> str:
    return secrets.token_hex(24)


text = f"""\
# Written by deploy/gen-secrets.sh on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Never commit this file.
# Read by docker compose (interpolation) and by `make stack`; non-secret settings are in
# deploy/airflow.env. Changing a *_DB_PASSWORD after the first start needs ALTER ROLE or a fresh
# postgres volume (docker compose down -v); see deploy/postgres/init-databases.sh (the reviews
# role's: deploy/postgres/init-reviews-database.sh, which can run again).

# PostgreSQL superuser, and the login roles of the Airflow, MLflow and reviews databases.
POSTGRES_PASSWORD={password()}
AIRFLOW_DB_PASSWORD={password()}
MLFLOW_DB_PASSWORD={password()}
REVIEWS_DB_PASSWORD={password()}

# Airflow UI logins (FAB auth manager; airflow-init applies them on every start): admin (role
# Admin), operator (role Operator: trigger, clear, approve), viewer (role Viewer: read only).
AIRFLOW_ADMIN_USERNAME={admin}
AIRFLOW_ADMIN_PASSWORD={password()}
AIRFLOW_OPERATOR_USERNAME=operator
AIRFLOW_OPERATOR_PASSWORD={password()}
AIRFLOW_VIEWER_USERNAME=viewer
AIRFLOW_VIEWER_PASSWORD={password()}

# Flower's basic auth (celery profile only): a login of its own, not an Airflow user.
FLOWER_USERNAME=flower
FLOWER_PASSWORD={password()}

# MLflow's basic auth: the admin (created on the first start of the mlflow-auth volume), Flask's
# session key, and the service user the Airflow tasks log in as (made by mlflow-init).
MLFLOW_ADMIN_USERNAME=mlflow-admin
MLFLOW_ADMIN_PASSWORD={password()}
MLFLOW_FLASK_SERVER_SECRET_KEY={secrets.token_urlsafe(48)}
MLFLOW_SERVICE_USERNAME=airflow
MLFLOW_SERVICE_PASSWORD={password()}

# Fernet key and API secret key: every Airflow component. JWT secret: the API server and the
# scheduler only (docker-compose.yaml gives it to no other service).
AIRFLOW__CORE__FERNET_KEY={base64.urlsafe_b64encode(os.urandom(32)).decode()}
AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(48)}
AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(48)}

# Host folder holding womens_clothing_reviews.csv.gz, mounted read-only at /opt/airflow/data.
SENTIMENT_DATA_DIR={data_dir}

# The project's LocalExecutor (plugins/sentiment_executor.py: Airflow's, with a shutdown that cannot
# hang) runs tasks in the scheduler. For Celery (redis, airflow-worker, flower) use:
#   COMPOSE_PROFILES=celery
#   AIRFLOW__CORE__EXECUTOR=CeleryExecutor
AIRFLOW__CORE__EXECUTOR=sentiment_executor.LocalExecutor

# The addresses your team's browsers use for the two UIs, named in mails and in the Airflow UI's
# MLflow links (unset: http://127.0.0.1:8080 and http://127.0.0.1:5000, right on a laptop), e.g.
# SENTIMENT_AIRFLOW_UI_URL=https://airflow.example.org
# MLFLOW_UI_URL=https://mlflow.example.org
"""

if existing is None:
    sys.stdout.write(text)
    sys.exit(0)
# --add-missing: the existing file unchanged, then each generated KEY=VALUE line it lacks.
old = existing.read_text()
have = set(re.findall(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", old, re.M))
lines = [line for line in text.splitlines() if re.match(r"[A-Za-z_][A-Za-z0-9_]*=", line)]
missing = [line for line in lines if line.split("=", 1)[0] not in have]
sys.stdout.write(old if not old or old.endswith("\n") else old + "\n")
if missing:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sys.stdout.write(f"\n# Added by deploy/gen-secrets.sh --add-missing on {stamp}.\n")
    sys.stdout.write("".join(line + "\n" for line in missing))
    names = ", ".join(line.split("=", 1)[0] for line in missing)
    print(f"gen-secrets: added {names} to {existing}", file=sys.stderr)
else:
    print(f"gen-secrets: {existing} lacks nothing; left as it is", file=sys.stderr)
PY

chmod 600 "$tmp"
mv "$tmp" "$out"
trap - EXIT
if [ -z "$existing" ]; then
  echo "gen-secrets: wrote $out"
fi
