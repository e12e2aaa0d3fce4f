"""The week's decision on a candidate: one record (:class:`RegisterResult`, what XCom carries) and
the model-version tags it is kept in.

The tables :data:`_VERDICT` (written by ``register``) and :data:`_OUTCOME` (written by ``promote``
or ``keep_champion``) say, field by field, which tag holds what and how it is written as text.
:func:`verdict_tags` and :func:`outcome_tags` write through them and :func:`result_from_tags`
reads back through them (a cleared ``register`` returns what the first try decided), so a field
added to the record and to a table is written and read back alike. Plain data: no MLflow import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from review_sentiment import names
from review_sentiment.gate import GatePolicy
from review_sentiment.metrics import rounded

# The outcomes that keep the champion, and what they say of the version (the run note).
_KEPT = {
    names.OUTCOME_KEPT: "stays challenger",
    names.OUTCOME_SMOKE_FAILED: "failed the smoke check, stays challenger",
    names.OUTCOME_DRIFT: "held back (the week drifted), stays challenger",
}


@dataclass
class RegisterResult:
    """What ``register`` decided; small enough for XCom."""

    model_name: str
    version: str
    run_id: str
    promoted: bool  # the champion alias is on this version (set by promote)
    reason: str
    candidate: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None  # on the comparison set
    champion_version: str | None = None
    reused: bool = False
    baseline: dict[str, float] | None = None
    passed: bool = False  # the gate's verdict
    outcome: str | None = None  # promoted or kept, once the week decided
    compared: dict[str, float] | None = None  # the candidate on the comparison set
    comparison_size: int | None = None
    experiment_id: str | None = None  # of the candidate's run
    monitoring: str | None = None  # the champion-monitoring alert of the week, if any
    # candidate - champion on the comparison set with its interval (uncertainty.Difference.to_scores)
    difference: dict[str, float] | None = None
    noninferiority_margin: float | None = None  # the gate's margin on that interval
    # Why the week's new reviews drifted from the champion's training data ("": they did not, or
    # no check); the gate's verdict leaves it out, the week's routing does not (drift.py).
    drift: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegisterResult:
        return cls(**data)

    def settled(self, outcome: str, reason: str | None = None) -> RegisterResult:
        """This result once the week promoted the version or kept the champion (and why)."""
        return dataclasses.replace(
            self, promoted=outcome == names.OUTCOME_PROMOTED, outcome=outcome, reason=reason or self.reason
        )

    def note(self) -> str:
        """The week in one Markdown line (the DAG run's note): the outcome, the two scores on the
        comparison set and the reason."""
        if self.outcome == names.OUTCOME_PROMOTED:
            head = f"**promoted v{self.version}** to champion"
        elif self.outcome in _KEPT and self.champion_version:
            head = f"**kept champion v{self.champion_version}**; v{self.version} {_KEPT[self.outcome]}"
        elif self.outcome in _KEPT:
            head = f"**not promoted**: v{self.version} {_KEPT[self.outcome]}"
        else:
            head = f"v{self.version}: gate {names.DECISION_PASSED if self.passed else names.DECISION_REFUSED}"
        mine = (self.compared or self.candidate).get("roc_auc")
        theirs = (self.champion or {}).get("roc_auc")
        scores = "" if mine is None else f"candidate ROC AUC {mine:.4f}"
        if scores and theirs is not None:
            scores += f" vs champion {theirs:.4f} on {self.comparison_size} unseen test reviews"
        alert = f"monitoring alert: {self.monitoring}" if self.monitoring else ""
        drift = f"drift: {self.drift}" if self.drift else ""
        return " - ".join(part for part in (head, scores, self.reason, drift, alert) if part)

    def summary(self) -> str:
        """One line for the task log: the version, the verdict or outcome and rounded scores."""
        verdict = names.DECISION_PASSED if self.passed else names.DECISION_REFUSED
        parts = [f"version {self.version} of {self.model_name}: gate {verdict}"]
        if self.outcome:
            parts[0] += f", {self.outcome}"
        others = (("champion", self.champion), ("baseline", self.baseline))
        for who, scores in (("candidate", self.candidate), *others):
            if scores:
                parts.append(f"{who} {rounded(scores)}")
        if self.comparison_size is not None:
            parts.append(f"compared on {self.comparison_size} test reviews neither model was trained on")
        if self.drift:
            parts.append(f"drift: {self.drift}")
        return "; ".join(parts) + f" ({self.reason})"


class _Codec(Protocol):
    def write(self, value: Any) -> dict[str, str]: ...

    def read(self, tags: Mapping[str, str]) -> Any: ...


@dataclass(frozen=True)
class _Scores:
    """Scores (metric name -> value), one tag per metric under ``prefix``, e.g.
    ``candidate.test_roc_auc``; none read back is ``{}`` if ``required``, else None."""

    prefix: str
    required: bool = False

    def write(self, value: dict[str, float] | None) -> dict[str, str]:
        return {f"{self.prefix}{k}": f"{v:.6f}" for k, v in (value or {}).items()}

    def read(self, tags: Mapping[str, str]) -> dict[str, float] | None:
        found = read_scores(tags, self.prefix)
        return found if found or self.required else None


@dataclass(frozen=True)
class _Optional:
    """A value that may be missing, written as ``none`` then."""

    tag: str
    kind: type = str

    def write(self, value: Any) -> dict[str, str]:
        return {self.tag: "none" if value in (None, "") else str(value)}

    def read(self, tags: Mapping[str, str]) -> Any:
        text = tags.get(self.tag, "none")
        return None if text == "none" else self.kind(text)


@dataclass(frozen=True)
class _Text:
    """Text that is always written once the table is (absent: ``default``)."""

    tag: str
    default: str = ""

    def write(self, value: str) -> dict[str, str]:
        return {self.tag: value}

    def read(self, tags: Mapping[str, str]) -> str:
        return tags.get(self.tag, self.default)


@dataclass(frozen=True)
class _Unset:
    """A value not written at all while the field is None (the outcome, until the week decides);
    absent, read back as None."""

    tag: str
    kind: type = str

    def write(self, value: Any) -> dict[str, str]:
        return {} if value is None else {self.tag: str(value)}

    def read(self, tags: Mapping[str, str]) -> Any:
        text = tags.get(self.tag)
        return None if text is None else self.kind(text)


@dataclass(frozen=True)
class _Note:
    """Text written only when there is some (absent: ``""``)."""

    tag: str

    def write(self, value: str) -> dict[str, str]:
        return {self.tag: value} if value else {}

    def read(self, tags: Mapping[str, str]) -> str:
        return tags.get(self.tag, "")


@dataclass(frozen=True)
class _Verdict:
    """The gate's verdict as ``passed`` or ``refused``."""

    tag: str

    def write(self, value: bool) -> dict[str, str]:
        return {self.tag: names.DECISION_PASSED if value else names.DECISION_REFUSED}

    def read(self, tags: Mapping[str, str]) -> bool:
        return tags.get(self.tag) == names.DECISION_PASSED


# What register records, field by field. The verdict (TAG_DECISION) comes last: register writes it
# after everything else, so its presence marks a finished registration.
_VERDICT: tuple[tuple[str, _Codec], ...] = (
    ("candidate", _Scores(names.CANDIDATE_SCORES, required=True)),
    ("baseline", _Scores(names.BASELINE_SCORES)),
    ("champion_version", _Optional(names.TAG_CHAMPION_VERSION)),
    ("champion", _Scores(names.CHAMPION_SCORES)),
    ("compared", _Scores(names.CANDIDATE_COMPARED)),
    ("comparison_size", _Optional(names.TAG_COMPARISON_SIZE, int)),
    ("difference", _Scores(names.COMPARISON_DIFFERENCE)),
    ("noninferiority_margin", _Unset(names.TAG_NONINFERIORITY_MARGIN, float)),
    ("drift", _Note(names.TAG_DRIFT)),
    ("reason", _Text(names.TAG_REASON)),
    ("passed", _Verdict(names.TAG_DECISION)),
)
# What promote or keep_champion adds; read back, a value here replaces the verdict's (the
# outcome's reason is the latest word on the version).
_OUTCOME: tuple[tuple[str, _Codec], ...] = (
    ("outcome", _Unset(names.TAG_OUTCOME)),
    ("reason", _Text(names.TAG_OUTCOME_REASON)),
)


def verdict_tags(result: RegisterResult) -> dict[str, str]:
    """The record's tags as register writes them, the verdict (``TAG_DECISION``) last."""
    return _write(_VERDICT, result)


def outcome_tags(result: RegisterResult) -> dict[str, str]:
    """The tags promote or keep_champion add to the version: the outcome and its reason."""
    return _write(_OUTCOME, result)


def result_from_tags(model_name: str, version: Any, reused: bool) -> RegisterResult:
    """What an earlier registration decided, read back from its version's tags.

    Args:
        model_name: The registered model.
        version: An MLflow ``ModelVersion`` (its ``version``, ``run_id`` and ``tags`` are read).
        reused: Whether the caller returns it instead of registering again.
    """
    tags = version.tags
    fields = {name: codec.read(tags) for name, codec in _VERDICT}
    fields.update({name: value for name, codec in _OUTCOME if (value := codec.read(tags))})
    return RegisterResult(
        model_name=model_name,
        version=str(version.version),
        run_id=version.run_id,
        promoted=fields.get("outcome") == names.OUTCOME_PROMOTED,
        reused=reused,
        **fields,
    )


def gate_tags(
    policy: GatePolicy, threshold: float, baseline_run_id: str | None, has_baseline: bool
) -> dict[str, str]:
    """What the verdict was weighed against, beside the record: the candidate's decision
    threshold, the baseline's run and the policy (``beat_baseline`` as applied: false without
    baseline scores)."""
    return {
        names.TAG_THRESHOLD: f"{threshold:.6f}",
        names.TAG_BASELINE_RUN: baseline_run_id or "none",
        names.TAG_BEAT_BASELINE: str(policy.beat_baseline and has_baseline).lower(),
        names.TAG_FLOOR: str(policy.floor),
        names.TAG_FORCED: str(policy.force).lower(),
    }


def was_forced(tags: Mapping[str, str]) -> bool:
    """Whether the version's gate was skipped by request (see :func:`gate_tags`)."""
    return tags.get(names.TAG_FORCED) == "true"


def read_scores(tags: Mapping[str, str], prefix: str) -> dict[str, float]:
    """The scores tagged under ``prefix`` (e.g. ``names.CANDIDATE_SCORES``), by metric name."""
    return {k.removeprefix(prefix): float(v) for k, v in tags.items() if k.startswith(prefix)}


def _write(table: tuple[tuple[str, _Codec], ...], result: RegisterResult) -> dict[str, str]:
    tags: dict[str, str] = {}
    for name, codec in table:
        tags.update(codec.write(getattr(result, name)))
    return tags
