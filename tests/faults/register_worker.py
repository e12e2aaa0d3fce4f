"""One side of the register race (tests/faults/test_register_race.py): a long-lived process that
calls ``review_sentiment.register.register`` once per line on stdin and prints the result.

    python tests/faults/register_worker.py TRACKING_URI MANIFEST MLFLOW_RUN_ID
    stdin:  "<model name> <pipeline run id>" per call; stdout: one JSON object per call

Heavy imports happen once, before "ready", so that both sides' calls start together on a cue.
"""

from __future__ import annotations

import dataclasses
import json
import sys


def main() -> int:
    tracking_uri, manifest, run_id = sys.argv[1:4]
    import keras  # noqa: F401 - imported before the cue, not during the race
    import mlflow.pyfunc  # noqa: F401

    from review_sentiment.config import Settings
    from review_sentiment.gate import GatePolicy
    from review_sentiment.register import register

    # The lock and artifact root come from the environment the test gives this process.
    settings = dataclasses.replace(Settings.from_env(), tracking_uri=tracking_uri)

    print("ready", flush=True)
    for line in sys.stdin:
        model_name, pipeline_run_id = line.split()
        try:
            result = register(
                [run_id],
                manifest,
                settings=dataclasses.replace(settings, model_name=model_name),
                policy=GatePolicy(floor=0.5),
                pipeline_run_id=pipeline_run_id,
            ).to_dict()
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            result = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
