"""The DAG files import their helper module (``sentiment_stage``) from the dags folder, which
Airflow's bundle DagBag and task runner put on ``sys.path``: the tests do the same."""

from __future__ import annotations

import sys

from review_sentiment.config import PROJECT_ROOT

DAGS = str(PROJECT_ROOT / "dags")
if DAGS not in sys.path:
    sys.path.append(DAGS)
