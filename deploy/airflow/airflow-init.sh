#!/usr/bin/env bash
# The one-shot airflow-init job (docker compose; usable by `make stack` too):
#   1. migrates the metadata database, failing the job on error (the image's own
#      _AIRFLOW_DB_MIGRATE ignores a failed migration);
#   2. makes the three UI logins of .env (FAB auth manager; FAB's tables come with the migration):
#      admin (role Admin), operator (role Operator: trigger, clear, approve) and viewer (role
#      Viewer, read only); created when missing, else given .env's password and role, so a
#      rotated .env applies on the next start;
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
: "${AIRFLOW_OPERATOR_USERNAME:?AIRFLOW_OPERATOR_USERNAME is not set}"
: "${AIRFLOW_OPERATOR_PASSWORD:?AIRFLOW_OPERATOR_PASSWORD is not set}"
: "${AIRFLOW_VIEWER_USERNAME:?AIRFLOW_VIEWER_USERNAME is not set}"
: "${AIRFLOW_VIEWER_PASSWORD:?AIRFLOW_VIEWER_PASSWORD is not set}"

echo "airflow-init: airflow db migrate"
airflow db migrate

# The pool that bounds how many `train` tasks run at once (each holds a TensorFlow model and the
# training arrays): set on every start, so a changed SENTIMENT_TRAINING_SLOTS applies on restart.
slots=${SENTIMENT_TRAINING_SLOTS:-2}
airflow pools set training "$slots" "sentiment_retrain train tasks: trainings at once (memory)" >/dev/null
echo "airflow-init: pool training has $slots slots"

python - <<'PY'
"""The roles and logins of .env, in FAB's tables (the API server reads them at each login)."""
import os
import sys

from werkzeug.security import check_password_hash

from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

# Operator = FAB's Viewer (as the provider defines it, so upgrades carry over) plus what trigger,
# clear and approve need; unlike FAB's User role, no deletion of DAGs, runs or task instances,
# and no asset events (which would start sentiment_score). FAB checks can_edit on the DAG itself
# for any change to its runs, task instances or approvals.
OPERATOR_ROLE = "Operator"
OPERATOR_EXTRA = [("can_edit", "DAGs"), ("can_create", "DAG Runs"), ("can_edit", "DAG Runs"),
                  ("can_edit", "Task Instances"), ("can_edit", "HITL Detail")]
LOGINS = [("ADMIN", "Admin"), ("OPERATOR", OPERATOR_ROLE), ("VIEWER", "Viewer")]

logins = [(os.environ[f"AIRFLOW_{key}_USERNAME"], os.environ[f"AIRFLOW_{key}_PASSWORD"], role)
          for key, role in LOGINS]
if len({username for username, _, _ in logins}) < len(logins):
    sys.exit("airflow-init: AIRFLOW_ADMIN/OPERATOR/VIEWER_USERNAME must be three different names")

with get_application_builder() as appbuilder:
    sm = appbuilder.sm
    sm.sync_roles()  # FAB's built-in roles (Admin, Op, User, Viewer, Public), before the API server's first start
    wanted = {(p.action.name, p.resource.name) for p in sm.find_role("Viewer").permissions}
    wanted |= set(OPERATOR_EXTRA)
    role = sm.find_role(OPERATOR_ROLE) or sm.add_role(OPERATOR_ROLE)
    for action, resource in sorted(wanted):
        perm = sm.get_permission(action, resource) or sm.create_permission(action, resource)
        if perm not in role.permissions:
            sm.add_permission_to_role(role, perm)
    for perm in list(role.permissions):  # exactly these: a permission added by hand goes again
        if (perm.action.name, perm.resource.name) not in wanted:
            sm.remove_permission_from_role(role, perm)
    for username, password, role_name in logins:
        role = sm.find_role(role_name)
        user = sm.find_user(username=username)
        if user is None:
            if not sm.add_user(username, username, role_name, f"{username}@localhost", role, password):
                sys.exit(f"airflow-init: could not create the login {username!r}")
            print(f"airflow-init: login {username!r} created (role {role_name})")
            continue
        user.roles, user.active = [role], True
        if not sm.update_user(user):
            sys.exit(f"airflow-init: could not update the login {username!r}")
        # Only a changed password is reset: a reset also ends the user's open UI sessions.
        if not (user.password and check_password_hash(user.password, password)):
            if not sm.reset_password(user.id, password):
                sys.exit(f"airflow-init: could not set the password of {username!r}")
            print(f"airflow-init: login {username!r}: password set from .env")
        print(f"airflow-init: login {username!r} up to date (role {role_name})")
PY

if [ -n "${REVIEWS_PATH:-}" ] && [ ! -r "$REVIEWS_PATH" ]; then
  echo "airflow-init: WARNING: no review file at $REVIEWS_PATH (set SENTIMENT_DATA_DIR in .env);" \
    "reviews-loader cannot fill the reviews table, and sentiment_retrain will fail at ingest" \
    "unless its source is a table that holds rows." >&2
fi
echo "airflow-init: done (executor: ${AIRFLOW__CORE__EXECUTOR:-sentiment_executor.LocalExecutor})"
