#!/usr/bin/env bash
# The one-shot airflow-init job (docker compose; usable by `make stack` too):
#   1. migrates the metadata database, failing the job on error (the image's own
#      _AIRFLOW_DB_MIGRATE ignores a failed migration);
#   2. makes the UI login the one in .env: with SimpleAuthManager (Airflow 3.3's default) users
#      come from [core] simple_auth_manager_users and their passwords from a JSON file that the
#      API server only ever adds generated passwords to; this sets AIRFLOW_ADMIN_USERNAME's entry;
#   3. warns when the review file is missing (the DAG can still read a PostgreSQL table that holds
#      rows; reviews-loader cannot fill the stack's `reviews` table without the file);
#   4. sets the `training` pool's slots (SENTIMENT_TRAINING_SLOTS);
#   5. warns, as Airflow's own init does, when the machine has less memory, CPUs or disk than the
#      stack needs (README, "Bounded resources"); `airflow-init.sh --check-resources` runs only that.
set -euo pipefail

# What the stack needs: the memory limits of docker-compose.yaml's services plus headroom, two
# CPUs (training and the scheduler), the images, logs and artifacts of a few months.
MIN_MEMORY_MB=${SENTIMENT_MIN_MEMORY_MB:-8192}
MIN_CPUS=${SENTIMENT_MIN_CPUS:-2}
MIN_DISK_MB=${SENTIMENT_MIN_DISK_MB:-10240}

check_resources() {
  local memory_kb memory_mb cpus disk_kb disk_mb short=0 where=${AIRFLOW_HOME:-/opt/airflow}
  [ -d "$where" ] || where=/
  memory_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  disk_kb=$(df -Pk "$where" | awk 'NR == 2 {print $4}')
  memory_mb=$(( memory_kb / 1024 ))
  disk_mb=$(( disk_kb / 1024 ))
  cpus=$(nproc)
  if (( memory_mb < MIN_MEMORY_MB )); then
    echo "airflow-init: WARNING: ${memory_mb} MB of memory, the stack needs ${MIN_MEMORY_MB} MB" >&2; short=1
  fi
  if (( cpus < MIN_CPUS )); then
    echo "airflow-init: WARNING: ${cpus} CPUs, the stack needs ${MIN_CPUS}" >&2; short=1
  fi
  if (( disk_mb < MIN_DISK_MB )); then
    echo "airflow-init: WARNING: ${disk_mb} MB of free disk, the stack needs ${MIN_DISK_MB} MB" >&2; short=1
  fi
  if (( short )); then
    echo "airflow-init: WARNING: tasks may be killed for memory or run slowly (Docker Desktop: raise" \
      "its memory and CPU settings)" >&2
  fi
  echo "airflow-init: resources: ${memory_mb} MB memory, ${cpus} CPUs, ${disk_mb} MB free disk"
}

if [ "${1:-}" = "--check-resources" ]; then
  check_resources
  exit 0
fi
check_resources

: "${AIRFLOW_ADMIN_USERNAME:?AIRFLOW_ADMIN_USERNAME is not set}"
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is not set}"

echo "airflow-init: airflow db migrate"
airflow db migrate

# The pool that bounds how many `train` tasks run at once (each holds a TensorFlow model and the
# training arrays): set on every start, so a changed SENTIMENT_TRAINING_SLOTS applies on restart.
slots=${SENTIMENT_TRAINING_SLOTS:-2}
airflow pools set training "$slots" "sentiment_retrain train tasks: trainings at once (memory)" >/dev/null
echo "airflow-init: pool training has $slots slots"

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
echo "airflow-init: done (executor: ${AIRFLOW__CORE__EXECUTOR:-sentiment_executor.LocalExecutor})"
