"""Unit tests of the promotion gate (the floor, the baseline, the champion, drift, a diverged
candidate, force) and of the decision record it leaves (its dict for XCom, its version tags)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from review_sentiment import names
from review_sentiment.decision import (
    RegisterResult,
    gate_tags,
    outcome_tags,
    result_from_tags,
    verdict_tags,
    was_forced,
)
from review_sentiment.gate import GateFacts, GatePolicy, gate

NAN = math.nan


def _gate(candidate: float, champion: float | None, floor: float, force: bool = False, **facts):
    """The gate on a candidate's and a champion's test ROC AUC under a floor (and other facts)."""
    return gate(
        GateFacts(candidate_auc=candidate, champion_auc=champion, **facts),
        GatePolicy(floor=floor, force=force),
    )


@pytest.mark.parametrize(
    ("candidate", "champion", "floor", "promoted", "reason"),
    [
        (0.90, None, 0.85, True, "no champion score to beat; candidate test ROC AUC 0.9000 >= floor 0.8500"),
        (0.85, None, 0.85, True, "no champion score to beat"),  # the floor itself passes
        (0.84, None, 0.85, False, "candidate test ROC AUC 0.8400 is below the floor 0.8500"),
        (0.84, 0.80, 0.85, False, "below the floor"),  # beating a weak champion is not enough
        (0.90, 0.92, 0.85, False, "candidate test ROC AUC 0.9000 is worse than the champion's 0.9200"),
        (0.92, 0.92, 0.85, True, ">= champion's 0.9200 and floor 0.8500"),  # no worse: a tie promotes
        (0.95, 0.92, 0.85, True, ">= champion's 0.9200"),
        (0.90, NAN, 0.85, True, ""),  # a champion that cannot be scored does not block
        (NAN, None, 0.85, False, "candidate test ROC AUC is not finite"),
        (NAN, 0.92, 0.85, False, "not finite"),
        (math.inf, None, 0.85, False, "not finite"),
    ],
)
def test_gate(candidate: float, champion: float | None, floor: float, promoted: bool, reason: str) -> None:
    decision, why = _gate(candidate, champion, floor)
    assert decision is promoted
    assert reason in why


@pytest.mark.parametrize(("candidate", "champion"), [(0.5, 0.95), (NAN, 0.9), (0.1, None)])
def test_force_promotes_whatever_the_scores(candidate: float, champion: float | None) -> None:
    assert _gate(candidate, champion, floor=0.85, force=True) == (
        True,
        "force-promoted by request, gate skipped",
    )


def _result(promoted: bool) -> RegisterResult:
    return RegisterResult(
        model_name="m", version="3", run_id="r", promoted=promoted, reason="below the floor"
    )


def test_register_result_is_xcom_sized_plain_data() -> None:
    assert _result(True).to_dict() == {
        "model_name": "m",
        "version": "3",
        "run_id": "r",
        "promoted": True,
        "reason": "below the floor",
        "candidate": {},
        "champion": None,
        "champion_version": None,
        "reused": False,
        "baseline": None,
        "passed": False,
        "outcome": None,
        "compared": None,
        "comparison_size": None,
        "experiment_id": None,
        "monitoring": None,
        "difference": None,
        "noninferiority_margin": None,
    }
    assert RegisterResult.from_dict(_result(True).to_dict()) == _result(True)


@pytest.mark.parametrize(
    ("candidate", "baseline", "promoted", "reason"),
    [
        (0.95, 0.96, False, "does not beat the TF-IDF + logistic regression baseline's 0.9600"),
        (0.96, 0.96, False, "does not beat"),  # a tie with the baseline is not a win
        (0.97, 0.96, True, "baseline's 0.9600"),
        (0.97, NAN, True, ""),  # a baseline that could not be scored does not block
    ],
)
def test_gate_requires_beating_the_baseline(
    candidate: float, baseline: float, promoted: bool, reason: str
) -> None:
    decision, why = _gate(candidate, None, 0.85, baseline_auc=baseline)
    assert decision is promoted
    assert reason in why


def test_drift_blocks_promotion_of_an_otherwise_better_model() -> None:
    decision, why = _gate(0.99, 0.90, 0.85, baseline_auc=0.9, drift="positive-label share 0.55 vs 0.82")
    assert decision is False
    assert why == "label drift blocks promotion: positive-label share 0.55 vs 0.82"


def test_force_overrides_baseline_and_drift() -> None:
    assert _gate(0.5, 0.9, 0.85, True, baseline_auc=0.95, drift="drifted")[0] is True


def test_the_floor_is_checked_before_the_baseline() -> None:
    assert "below the floor" in _gate(0.80, None, 0.85, baseline_auc=0.9)[1]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"outcome": "promoted", "promoted": True}, "**promoted v3** to champion - candidate ROC AUC 0.9500"),
        (
            {
                "outcome": "kept",
                "champion_version": "2",
                "champion": {"roc_auc": 0.96},
                "comparison_size": 812,
            },
            "**kept champion v2**; v3 stays challenger - candidate ROC AUC 0.9500 vs champion 0.9600 on 812 "
            "unseen test reviews - below the floor",
        ),
        ({"outcome": "kept"}, "**not promoted**: v3 stays challenger - candidate ROC AUC 0.9500 - below"),
        ({}, "v3: gate refused"),
    ],
)
def test_the_run_note_says_the_outcome_and_the_scores(changes: dict, expected: str) -> None:
    result = RegisterResult(**{**_result(False).to_dict(), "candidate": {"roc_auc": 0.95}, **changes})
    assert result.note().startswith(expected)


def test_the_baseline_is_no_bar_when_the_policy_says_so() -> None:
    facts = GateFacts(candidate_auc=0.90, baseline_auc=0.95)
    passed, why = gate(facts, GatePolicy(floor=0.85, beat_baseline=False))
    assert passed is True
    assert why == "no champion score to beat; candidate test ROC AUC 0.9000 >= floor 0.8500"


@pytest.mark.parametrize(
    ("facts", "passed", "reason"),
    [
        (
            {"champion_auc": 0.95, "compared_auc": 0.94, "comparison_size": 812},
            False,
            "candidate ROC AUC 0.9400 is worse than the champion's 0.9500 on the 812 test reviews "
            "neither model was trained on",
        ),
        (
            {"champion_auc": 0.93, "compared_auc": 0.94, "comparison_size": 812, "baseline_auc": 0.9},
            True,
            "candidate ROC AUC 0.9400 >= champion's 0.9300 on the 812 test reviews neither model was "
            "trained on; test ROC AUC 0.9600 >= floor 0.8500, baseline's 0.9000",
        ),
        ({"champion_auc": 0.5, "cannot_compare": "too few to compare"}, False, "too few to compare"),
    ],
)
def test_the_champion_is_weighed_on_the_comparison_set(facts: dict, passed: bool, reason: str) -> None:
    assert gate(GateFacts(candidate_auc=0.96, **facts), GatePolicy(floor=0.85)) == (passed, reason)


def _version(tags: dict[str, str]) -> SimpleNamespace:
    """What result_from_tags reads of an MLflow ModelVersion."""
    return SimpleNamespace(version="3", run_id="r", tags=tags)


DECIDED = RegisterResult(
    model_name="m", version="3", run_id="r", promoted=False, passed=True, reason="no worse than v2",
    candidate={"roc_auc": 0.951234, "accuracy": 0.9}, champion={"roc_auc": 0.94},
    champion_version="2", baseline={"roc_auc": 0.93}, compared={"roc_auc": 0.95}, comparison_size=812,
)  # fmt: skip


@pytest.mark.parametrize(
    "result",
    [
        DECIDED,
        RegisterResult(model_name="m", version="3", run_id="r", promoted=False, reason="below the floor"),
    ],
    ids=["compared", "first-version"],
)
def test_the_record_reads_back_from_the_tags_it_writes(result: RegisterResult) -> None:
    assert result_from_tags("m", _version(verdict_tags(result)), reused=False) == result
    for outcome, reason in ((names.OUTCOME_PROMOTED, None), (names.OUTCOME_KEPT, "champion moved")):
        settled = result.settled(outcome, reason)
        tags = {**verdict_tags(result), **outcome_tags(settled)}
        assert result_from_tags("m", _version(tags), reused=True) == RegisterResult(
            **{**settled.to_dict(), "reused": True}
        )


def test_the_verdict_is_the_last_tag_written_and_the_tag_names_stay() -> None:
    """Older versions' tags are read by this code, and notify, the run note and the tests read
    these names: they must not change."""
    tags = verdict_tags(DECIDED)
    assert list(tags)[-1] == "gate.decision"
    assert tags == {
        "candidate.test_roc_auc": "0.951234",
        "candidate.test_accuracy": "0.900000",
        "baseline.test_roc_auc": "0.930000",
        "champion.version": "2",
        "champion.test_roc_auc": "0.940000",
        "candidate.compared_roc_auc": "0.950000",
        "gate.comparison_size": "812",
        "gate.reason": "no worse than v2",
        "gate.decision": "passed",
    }
    assert outcome_tags(DECIDED.settled("kept")) == {"outcome": "kept", "outcome.reason": "no worse than v2"}


def test_a_version_without_a_comparison_reads_back_none() -> None:
    tags = verdict_tags(RegisterResult(model_name="m", version="3", run_id="r", promoted=False, reason="x"))
    assert (tags["champion.version"], tags["gate.comparison_size"], tags["gate.decision"]) == (
        "none",
        "none",
        "refused",
    )


def test_the_policy_is_recorded_beside_the_verdict() -> None:
    policy = GatePolicy(floor=0.8, beat_baseline=True, force=True)
    tags = gate_tags(policy, 0.4321, "baseline-run", has_baseline=True)
    assert tags == {
        "candidate.threshold": "0.432100",
        "baseline.run_id": "baseline-run",
        "gate.beat_baseline": "true",
        "gate.floor": "0.8",
        "gate.forced": "true",
    }
    assert was_forced(tags)
    unbarred = gate_tags(GatePolicy(), 0.5, None, has_baseline=False)
    assert (unbarred["baseline.run_id"], unbarred["gate.beat_baseline"], was_forced(unbarred)) == (
        "none",
        "false",
        False,
    )


def _evidence(comparison, drift=None, baseline=None):
    from review_sentiment.evidence import Evidence

    return Evidence(
        run=None, data=None, test=None, candidate={"roc_auc": 0.95}, probability=None, threshold=0.5,
        baseline_run_id=None, drift=drift, baseline=baseline, comparison=comparison,
    )  # fmt: skip


def test_the_gate_sees_no_champion_as_no_champion() -> None:
    from review_sentiment.evidence import NO_CHAMPION

    assert _evidence(NO_CHAMPION).facts() == GateFacts(candidate_auc=0.95)
    assert gate(_evidence(NO_CHAMPION).facts(), GatePolicy(floor=0.85)).passed


def test_the_gate_sees_the_comparison_the_drift_and_the_baseline() -> None:
    from review_sentiment.evidence import Comparison

    compared = Comparison("2", size=812, candidate={"roc_auc": 0.94}, champion={"roc_auc": 0.93})
    drift = SimpleNamespace(drifted=True, reason="positive-label share 0.50 vs 0.82")
    facts = _evidence(compared, drift, SimpleNamespace(scores={"roc_auc": 0.9})).facts()
    assert facts == GateFacts(
        candidate_auc=0.95, drift=drift.reason, baseline_auc=0.9, champion_auc=0.93, compared_auc=0.94,
        comparison_size=812,
    )  # fmt: skip
    unfair = Comparison("2", unavailable="too few to compare the two fairly")
    assert _evidence(unfair).facts().cannot_compare == "too few to compare the two fairly"
