#!/usr/bin/env bash
# The reviews database: a login role and a database, both named `reviews`, apart from Airflow's and
# MLflow's (deploy/postgres/init-databases.sh), with REVIEWS_DB_PASSWORD from .env. The one-shot
# reviews-loader service (docker-compose.yaml) then creates and fills the `reviews` table as this
# role, and the Airflow connection reviews_db (AIRFLOW_CONN_REVIEWS_DB) reads it as this role.
#
# Runs on the first start of an empty PostgreSQL volume (the postgres image runs the files in
# /docker-entrypoint-initdb.d), and can run again: it creates what is missing and sets the
# password, so it also brings a volume made before the reviews database (or a changed
# REVIEWS_DB_PASSWORD) up to date:
#   docker compose up -d postgres
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/init-reviews-database.sh
set -eo pipefail

if [ -z "${REVIEWS_DB_PASSWORD:-}" ]; then
  echo "init-reviews-database.sh: REVIEWS_DB_PASSWORD must be set (deploy/gen-secrets.sh --add-missing)" >&2
  exit 1
fi

# The password travels as a psql variable, quoted by psql (:'name'), never spliced into SQL.
# CREATE ROLE/DATABASE have no IF NOT EXISTS: \gexec runs each only when the SELECT finds it missing.
psql -v ON_ERROR_STOP=1 --no-psqlrc \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  --set reviews_password="$REVIEWS_DB_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE reviews LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reviews')
\gexec
ALTER ROLE reviews LOGIN PASSWORD :'reviews_password';
SELECT 'CREATE DATABASE reviews OWNER reviews ENCODING ''UTF8'''
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'reviews')
\gexec
REVOKE ALL ON DATABASE reviews FROM PUBLIC;
SQL
echo "init-reviews-database.sh: role and database reviews ready"
