"""The task ids of the sentiment DAGs, declared once: the DAG files name their tasks with them,
and the plugins (run note, MLflow links) and the task helper read them, so renaming a task here
renames it everywhere. Plain strings: the DAG files import this module at parse time."""

from __future__ import annotations

# sentiment_retrain
INGEST = "ingest"
MONITOR_CHAMPION = "monitor_champion"
PREPROCESS = "preprocess"
TOKENIZE = "tokenize"
PREPARE_GRID = "prepare_grid"
TRAIN = "train"
BASELINE = "baseline"
REGISTER = "register"
DECIDE = "decide"
GATE_PASSED = "gate_passed"
GATE_REFUSED = "gate_refused"
APPROVAL = "approval"
PROMOTE = "promote"
KEEP_CHAMPION = "keep_champion"
SMOKE_CHECK = "smoke_check"
SMOKE_FAILED = "smoke_failed"  # the branch's path to keep_champion after a failed smoke check
DRIFTED = "drifted"  # its path to keep_champion for a drifted week without approval

# sentiment_score
RESOLVE_CHAMPION = "resolve_champion"
SCORE = "score"
WATCH_PREDICTIONS = "watch_predictions"

# sentiment_rollback
ROLLBACK = "rollback"

# sentiment_housekeeping
HOUSEKEEPING = "housekeeping"

# The tasks whose return value is an MLflow run (train: one per grid point).
RUN_TASKS = (TRAIN, BASELINE)
# The tasks whose return value is the week's outcome (a RegisterResult): one of them runs.
OUTCOME_TASKS = (PROMOTE, KEEP_CHAMPION)
# The tasks whose return value names the registered model version, whichever way the week went.
VERSION_TASKS = (REGISTER, *OUTCOME_TASKS)
