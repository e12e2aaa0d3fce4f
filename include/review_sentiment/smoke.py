"""The smoke check: before ``champion`` may move to a new version, that version is loaded by its
``models:/<name>/<version>`` URI in a fresh Python process, as a user would load it, and must

* score canned reviews (obvious praise and complaints, text that is empty after cleaning, a
  1 MB review, non-English text, emoji, HTML entities) with finite probabilities in [0, 1], the
  obvious ones on the right side of the version's decision threshold;
* give the same scores, to :data:`~review_sentiment.config.SMOKE_TOLERANCE`, as ``register``
  computed for a sample of the test split (stored then with the candidate's run,
  :func:`record_sample`);
* score 1,000 ordinary reviews within the latency budget.

:func:`smoke_check` runs it (the child process is this module's ``main``), judges what the child
measured (:func:`judge`, pure) and tags the verdict on the version (``smoke.passed``,
``smoke.reason``, ``smoke.seconds_per_1000``). The retraining DAG's ``smoke_check`` task calls
:func:`check_week`; ``routing.py`` turns a failure into a kept champion. By hand::

    python -m review_sentiment.smoke --version 7      # exit 1 if it fails; the result as JSON
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from review_sentiment import config, names
from review_sentiment.config import Settings
from review_sentiment.routing import needs_smoke_check

log = logging.getLogger(__name__)

__all__ = ["CASES", "Case", "SmokeResult", "check_week", "judge", "record_sample", "smoke_check"]

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
LATENCY_REVIEWS = 1000  # the budget is per this many ordinary reviews, scored in one call
LONG_REVIEW_CHARS = 1_000_000
_MESSAGE_CHARS = 240  # each failure, so that the result stays XCom-sized and tag-sized
_REASON_CHARS = 1000


@dataclass(frozen=True)
class Case:
    """One canned review; ``expect`` 1 (recommended) or 0 (not) for an obvious one, else None
    (any finite probability in [0, 1] will do)."""

    name: str
    text: str
    title: str = ""
    expect: int | None = None


# Obvious reviews in this shop's own words (any model that learned the data gets them right).
CASES: tuple[Case, ...] = (
    Case("praise_dress", "I love this dress! The fit is perfect, the fabric is soft and comfortable and it "
         "is so flattering. Great quality, I get compliments every time I wear it. Highly recommend.",
         "Love it", 1),
    Case("praise_top", "Absolutely beautiful top. It fits true to size, the color is gorgeous and it "
         "washes well. I bought it in two colors, a great purchase.", "Perfect top", 1),
    Case("complaint_fabric", "Returned it. The fabric is cheap, thin and itchy, a seam came apart after one "
         "wash and the fit is terrible. Very poor quality, so disappointed.", "Cheap and itchy", 0),
    Case("complaint_fit", "Huge disappointment. The sizing is way off, it looked like a tent on me and the "
         "material feels cheap. It is going back, do not buy this.", "Do not buy", 0),
    Case("empty_after_cleaning", "!!! ??? 123 ... :-) $$$ 42", "---"),
    Case("empty", "", ""),
    Case("french", "Cette robe est magnifique, la coupe est parfaite et le tissu très agréable.", "Superbe"),
    Case("japanese", "このワンピースはとても可愛いです。サイズもぴったりでした。", "最高"),
    Case("emoji", "😍😍😍 👗✨ 10/10 🔥🔥", "💯"),
    Case("html_entities", "I &lt;3 this dress &amp; the fit is &quot;perfect&quot; &#128525; &nbsp;<br/>",
         "Love &amp; fit"),
)  # fmt: skip


def canned_reviews() -> list[Case]:
    """:data:`CASES` and a 1 MB review (built on call: never held at import)."""
    sentence = "The dress is lovely and the fabric feels soft, but the sleeves run a little long. "
    long_text = (sentence * (LONG_REVIEW_CHARS // len(sentence) + 1))[:LONG_REVIEW_CHARS]
    return [*CASES, Case("one_megabyte", long_text, "Long review")]


@dataclass
class SmokeResult:
    """The smoke check's verdict on one version; small enough for XCom."""

    version: str
    status: str  # passed, failed or skipped (the week could not promote it: not checked)
    failures: list[str] = field(default_factory=list)
    seconds_per_1000: float | None = None  # to score LATENCY_REVIEWS ordinary reviews
    load_seconds: float | None = None  # to load the version in the fresh process
    note: str = ""  # why it was skipped

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def reason(self) -> str:
        """One line: what failed, else what passed (or why it was skipped)."""
        if self.status == SKIPPED:
            return f"not run: {self.note}"
        if self.failures:
            return "; ".join(self.failures)[:_REASON_CHARS]
        latency = (
            "" if self.seconds_per_1000 is None else f", {self.seconds_per_1000:.2f} s per 1,000 reviews"
        )
        return f"loads by its models:/ URI in a fresh process, scores the canned and sample reviews{latency}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "reason": self.reason}

    def to_tags(self) -> dict[str, str]:
        """The version tags of a check that ran."""
        latency = "none" if self.seconds_per_1000 is None else f"{self.seconds_per_1000:.4f}"
        return {
            names.TAG_SMOKE_PASSED: str(self.passed).lower(),
            names.TAG_SMOKE_REASON: self.reason,
            names.TAG_SMOKE_LATENCY: latency,
        }


# --- register's side: the sample the version must reproduce -------------------------------------


def sample_rows(n_rows: int, size: int = config.SMOKE_SAMPLE_SIZE) -> list[int]:
    """Evenly spaced row positions (deterministic: a retried register stores the same sample)."""
    if n_rows <= size:
        return list(range(n_rows))
    return sorted({round(i * (n_rows - 1) / (size - 1)) for i in range(size)})


def record_sample(mlflow_client: Any, run_id: str, test: Any, probability: Any) -> None:
    """Store a sample of the test split, as the model's input, with the probabilities register
    computed for it, as the run's artifact :data:`~review_sentiment.names.SMOKE_SAMPLE_ARTIFACT`.

    Args:
        mlflow_client: An ``MlflowClient``.
        run_id: The candidate's run.
        test: The test split (canonical columns), row for row with ``probability``.
        probability: The candidate's P(recommended) on ``test``.
    """
    from review_sentiment.scoring import model_request

    rows = sample_rows(len(test))
    request = model_request(test.iloc[rows])
    payload = {
        "inputs": {column: request[column].tolist() for column in request.columns},
        "probability": [float(probability[i]) for i in rows],
    }
    mlflow_client.log_text(run_id, json.dumps(payload), names.SMOKE_SAMPLE_ARTIFACT)


def _download_sample(mlflow_client: Any, run_id: str) -> dict[str, Any] | None:
    """The stored sample, or None when the run has none (registered before samples were kept)."""
    folder = names.SMOKE_SAMPLE_ARTIFACT.rsplit("/", 1)[0]
    if names.SMOKE_SAMPLE_ARTIFACT not in {f.path for f in mlflow_client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow_client.download_artifacts(run_id, names.SMOKE_SAMPLE_ARTIFACT, tmp)
        return json.loads(Path(path).read_text(encoding="utf-8"))


# --- the fresh process ------------------------------------------------------------------------


def measure(uri: str, sample_inputs: Mapping[str, list[str]]) -> dict[str, Any]:
    """Load ``uri`` and score: each canned review alone, the sample in one call, then
    :data:`LATENCY_REVIEWS` sample reviews (cycled) in one timed call. Runs in the child process."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from review_sentiment import schema

    def score(frame: pd.DataFrame) -> list[float]:
        return np.asarray(model.predict(frame)[names.PROBABILITY], dtype=float).reshape(-1).tolist()

    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(uri)
    measured: dict[str, Any] = {"load_seconds": time.perf_counter() - started, "cases": {}}
    for case in canned_reviews():
        frame = pd.DataFrame({schema.MODEL_TEXT_COLUMN: [case.text], schema.MODEL_TITLE_COLUMN: [case.title]})
        try:
            measured["cases"][case.name] = {"probability": score(frame)}
        except Exception as exc:  # noqa: BLE001 - a case that crashes is a finding, not the end
            measured["cases"][case.name] = {"error": f"{type(exc).__name__}: {exc}"}
    sample = pd.DataFrame(dict(sample_inputs), columns=[schema.MODEL_TEXT_COLUMN, schema.MODEL_TITLE_COLUMN])
    measured["sample"] = score(sample) if len(sample) else []
    # Ordinary reviews (the sample's; without one, the canned ones), in one timed call.
    canned = {
        schema.MODEL_TEXT_COLUMN: [c.text for c in CASES],
        schema.MODEL_TITLE_COLUMN: [c.title for c in CASES],
    }
    ordinary = sample if len(sample) else pd.DataFrame(canned)
    batch = ordinary.iloc[np.arange(LATENCY_REVIEWS) % len(ordinary)].reset_index(drop=True)
    started = time.perf_counter()
    score(batch)
    measured["seconds_per_1000"] = (time.perf_counter() - started) * 1000 / LATENCY_REVIEWS
    return measured


def _child(argv: Sequence[str]) -> int:
    """``--child URI REQUEST OUTPUT``: measure, write the JSON to OUTPUT (via a temp name)."""
    uri, request, output = argv
    inputs = json.loads(Path(request).read_text(encoding="utf-8"))
    try:
        measured = measure(uri, inputs)
        code = 0
    except Exception as exc:  # noqa: BLE001 - whatever breaks, the parent reports it as the failure
        measured, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
    partial = Path(f"{output}.partial")
    partial.write_text(json.dumps(measured), encoding="utf-8")
    partial.replace(output)
    return code


# --- judging what the child measured (pure) ----------------------------------------------------


def _probability_problem(value: Any) -> str | None:
    """Why ``value`` is no probability, or None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"not a number ({value!r})"
    if not math.isfinite(value):
        return f"not finite ({value})"
    if not 0.0 <= value <= 1.0:
        return f"outside [0, 1] ({value:.6g})"
    return None


def _judge_case(case: Case, found: Mapping[str, Any], threshold: float) -> str | None:
    """What is wrong with one canned review's score, or None."""
    if "error" in found:
        return f"{case.name}: scoring failed: {found['error']}"
    scores = found.get("probability") or []
    if len(scores) != 1:
        return f"{case.name}: {len(scores)} scores for one review"
    (p,) = scores
    if (problem := _probability_problem(p)) is not None:
        return f"{case.name}: probability {problem}"
    if case.expect == 1 and p < threshold:
        return f"{case.name}: obvious praise scored {p:.4f}, below the threshold {threshold:.4f}"
    if case.expect == 0 and p >= threshold:
        return f"{case.name}: obvious complaint scored {p:.4f}, at or above the threshold {threshold:.4f}"
    return None


def _judge_sample(found: Sequence[Any], expected: Sequence[float], tolerance: float) -> str | None:
    """Whether the sample's scores are register's, to ``tolerance``."""
    if len(found) != len(expected):
        return f"test sample: {len(found)} scores for {len(expected)} reviews"
    bad = [i for i, p in enumerate(found) if _probability_problem(p) is not None]
    if bad:
        return f"test sample: {len(bad)} of {len(found)} probabilities not finite or outside [0, 1]"
    gaps = [abs(p - q) for p, q in zip(found, expected, strict=True)]
    off = [g for g in gaps if not g <= tolerance]
    if off:
        return (
            f"test sample: {len(off)} of {len(found)} scores differ from register's by up to "
            f"{max(off):.3g} (tolerance {tolerance:g})"
        )
    return None


def judge(
    measured: Mapping[str, Any],
    threshold: float,
    expected_sample: Sequence[float],
    *,
    tolerance: float = config.SMOKE_TOLERANCE,
    budget: float = config.SMOKE_LATENCY_BUDGET_S,
    cases: Sequence[Case] | None = None,
) -> list[str]:
    """Every failure in what the fresh process measured (empty: the version passes).

    Args:
        measured: :func:`measure`'s result (or ``{"error": ...}`` if the version did not load).
        threshold: The version's decision threshold.
        expected_sample: The probabilities register stored for the test sample.
        tolerance: The largest difference allowed from register's scores.
        budget: Seconds allowed to score 1,000 ordinary reviews.
        cases: The canned reviews measured (default: :func:`canned_reviews`).
    """
    if "error" in measured:
        return [f"the version did not load or score: {measured['error']}"[:_MESSAGE_CHARS]]
    failures = []
    for case in canned_reviews() if cases is None else cases:
        found = measured.get("cases", {}).get(case.name)
        problem = f"{case.name}: not scored" if found is None else _judge_case(case, found, threshold)
        failures.append(problem)
    failures.append(_judge_sample(measured.get("sample", []), expected_sample, tolerance))
    latency = measured.get("seconds_per_1000")
    if latency is None:
        failures.append("latency: not measured")
    elif not latency <= budget:
        failures.append(f"latency: {latency:.2f} s per 1,000 reviews, over the budget of {budget:g} s")
    return [f[:_MESSAGE_CHARS] for f in failures if f]


# --- the parent: run, judge, tag ---------------------------------------------------------------


def _run_child(uri: str, inputs: Mapping[str, Any], tracking_uri: str, timeout: float) -> dict[str, Any]:
    """Run :func:`measure` in a fresh interpreter; what it measured, or ``{"error": ...}``."""
    with tempfile.TemporaryDirectory() as tmp:
        request, output = Path(tmp) / "request.json", Path(tmp) / "measured.json"
        request.write_text(json.dumps(inputs), encoding="utf-8")
        path = os.pathsep.join(
            p for p in (str(config.PACKAGE_DIR.parent), os.environ.get("PYTHONPATH", "")) if p
        )
        env = {
            **os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri,
            "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        }  # fmt: skip
        argv = [sys.executable, "-m", "review_sentiment.smoke", "--child", uri, str(request), str(output)]
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"the fresh process did not finish within {timeout:g} s"}
        if output.is_file():
            return json.loads(output.read_text(encoding="utf-8"))
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {"error": f"the fresh process exited with code {done.returncode}: {tail}"}


def smoke_check(
    version: str,
    *,
    settings: Settings | None = None,
    budget: float = config.SMOKE_LATENCY_BUDGET_S,
    tolerance: float = config.SMOKE_TOLERANCE,
    timeout: float = config.SMOKE_TIMEOUT_S,
) -> SmokeResult:
    """Smoke-check ``version`` of the settings' model and tag the verdict on it.

    Raises:
        mlflow.exceptions.MlflowException: the tracking server does not answer (also after a
            child that failed: an outage is retried, not taken for a broken model).
    """
    from review_sentiment import versions
    from review_sentiment.tracking import client

    settings = settings or Settings.from_env()
    mlflow_client, name = client(settings.tracking_uri), settings.model_name
    registered = mlflow_client.get_model_version(name, version)
    sample = _download_sample(mlflow_client, registered.run_id)
    inputs = (sample or {}).get("inputs", {})
    uri = f"models:/{name}/{version}"
    measured = _run_child(uri, inputs, settings.tracking_uri, timeout)
    if "error" in measured:
        mlflow_client.get_model_version(name, version)  # raises while the server is away
    failures = judge(measured, versions.version_threshold(registered), (sample or {}).get("probability", []),
                     tolerance=tolerance, budget=budget)  # fmt: skip
    if sample is None:
        failures.append(f"no test sample stored with the version's run ({names.SMOKE_SAMPLE_ARTIFACT})")
    result = SmokeResult(
        str(version), FAILED if failures else PASSED, failures,
        seconds_per_1000=measured.get("seconds_per_1000"), load_seconds=measured.get("load_seconds"),
    )  # fmt: skip
    versions.set_tags(mlflow_client, name, str(version), result.to_tags())
    log.info("smoke check of %s: %s - %s", uri, result.status, result.reason)
    return result


def check_week(result: Mapping[str, Any], *, forced: bool, settings: Settings | None = None) -> SmokeResult:
    """The retraining week's smoke check: the version ``register`` made, if the week could
    promote it (the gate passed it, or the run forces it); otherwise a quick ``skipped``."""
    version = str(result["version"])
    if not needs_smoke_check(result, forced=forced):
        return SmokeResult(version, SKIPPED, note="the gate refused the version")
    return smoke_check(version, settings=settings)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m review_sentiment.smoke --version N``: check and print the result as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        return _child(args[1:])
    parser = argparse.ArgumentParser(
        prog="python -m review_sentiment.smoke", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--version", required=True, help="the model version to check")
    parsed = parser.parse_args(args)
    result = smoke_check(parsed.version)
    print(json.dumps(result.to_dict(), indent=2))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
