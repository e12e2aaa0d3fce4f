# The one Airflow image of the stack (api-server, scheduler, dag-processor, triggerer, Celery worker,
# flower): the official SLIM image (Airflow core, no providers) plus the project's pinned lock and
# the DAG bundle's code, so the installed set is the lock and nothing else to reconcile with.
# Built by `docker compose build`; the tag's Airflow version must match requirements.txt.
FROM apache/airflow:slim-3.3.2-python3.11

# The full lock pins apache-airflow==3.3.2 itself, so installing it cannot move Airflow; pip check
# fails the build on any conflict (pip install only warns). `make install` runs the same check.
# Dependencies first: code edits below rebuild in seconds.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt && pip check

# Mount points of the named volumes, created as the airflow user so that fresh volumes inherit
# its ownership (Docker copies it on first mount).
RUN mkdir -p /opt/airflow/artifacts /opt/airflow/data

# The stage package is imported from include/ (plain Python: it never imports airflow).
ENV PYTHONPATH=/opt/airflow/include

COPY --chown=airflow:0 deploy/airflow/airflow-init.sh /opt/airflow/deploy/airflow-init.sh
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
