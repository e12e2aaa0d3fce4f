#!/usr/bin/env bash
# Runs once, on the first start of an empty PostgreSQL volume (the postgres image runs the files
# in /docker-entrypoint-initdb.d): one login role and one database each for Airflow's metadata and
# MLflow's tracking store, with the passwords from .env. Neither role can connect to the other's
# database. Names match the URLs in deploy/airflow.env and the mlflow command in docker-compose.yaml.
#
# Changing a password in .env later does not touch an existing volume: run
#   ALTER ROLE airflow PASSWORD '...';   (psql as postgres)   or   docker compose down -v
set -eo pipefail

if [ -z "${AIRFLOW_DB_PASSWORD:-}" ] || [ -z "${MLFLOW_DB_PASSWORD:-}" ]; then
  echo "init-databases.sh: AIRFLOW_DB_PASSWORD and MLFLOW_DB_PASSWORD must be set" >&2
  exit 1
fi

# Passwords travel as psql variables and are quoted by psql (:'name'), never spliced into SQL.
psql -v ON_ERROR_STOP=1 --no-psqlrc \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  --set airflow_password="$AIRFLOW_DB_PASSWORD" \
  --set mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8';
REVOKE ALL ON DATABASE airflow FROM PUBLIC;

CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow ENCODING 'UTF8';
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
SQL
echo "init-databases.sh: created roles and databases airflow, mlflow"
