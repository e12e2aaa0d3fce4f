"""Weekly retraining of the review-sentiment model: one module per pipeline stage.

Stages: ingest -> preprocess -> tokenize -> train (one grid point) -> register.
Nothing here imports Airflow, so every stage runs from pytest or a shell
(``python -m review_sentiment --help``).
"""

__version__ = "0.1.0"
