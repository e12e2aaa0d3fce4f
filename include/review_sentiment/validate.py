"""The data contract, checked on a raw frame before anything is written downstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from review_sentiment import schema
from review_sentiment.errors import DataContractError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MIN_ROWS = 200
DEFAULT_MIN_MINORITY_FRACTION = 0.02
# Rows set aside (not failed) for a row-local defect; above this share of the input the whole
# batch is suspect and ingest fails.
QUARANTINE_MAX_FRACTION = 0.01
QUARANTINE_REASON_NUL = "NUL byte"


@dataclass(frozen=True)
class ValidationReport:
    """What validation kept and dropped."""

    rows_in: int
    rows_out: int
    dropped_no_text: int
    label_counts: dict[int, int]


def validate_reviews(
    raw: pd.DataFrame,
    *,
    source: str = "input",
    min_rows: int = DEFAULT_MIN_ROWS,
    min_minority_fraction: float = DEFAULT_MIN_MINORITY_FRACTION,
    keep_empty_text: bool = False,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check ``raw`` (canonical column names, string cells) and return a typed frame.

    Rows without review text are dropped and counted; every other violation is collected
    and raised together.

    Args:
        raw: Frame with canonical column names and string (or missing) cells.
        source: Name of the input, used in the error message.
        min_rows: Fewest rows with text that make a usable training set.
        min_minority_fraction: Smallest share the rarer label may have.
        keep_empty_text: Keep rows without review text (for loading a raw table).

    Returns:
        The typed frame (integer columns as ``Int64``, text as ``str``) and a report.

    Raises:
        DataContractError: listing every violation found.
    """
    missing = [c for c in schema.COLUMNS if c not in raw.columns]
    extra = [c for c in raw.columns if c not in schema.COLUMNS]
    violations = _listed("missing columns", missing) + _listed("unexpected columns", extra)
    if missing:  # every other check reads these columns
        raise DataContractError(violations, source)

    df, not_integer = _typed(raw)
    violations += not_integer + _label_violations(df[schema.LABEL]) + _id_violations(df[schema.ID])
    has_text = (df[schema.TEXT].str.strip() != "") | keep_empty_text
    kept = df[has_text]
    counts = {int(k): int(v) for k, v in kept[schema.LABEL].value_counts(dropna=True).items()}
    violations += _size_violations(len(kept), counts, min_rows, min_minority_fraction)
    if violations:
        raise DataContractError(violations, source)

    kept = kept.reset_index(drop=True)
    kept[schema.LABEL] = kept[schema.LABEL].astype("int8")
    report = ValidationReport(
        rows_in=len(df), rows_out=len(kept), dropped_no_text=int((~has_text).sum()), label_counts=counts
    )
    return kept, report


def _listed(what: str, columns: list[str]) -> list[str]:
    return [f"{what}: " + ", ".join(_show(c) for c in columns)] if columns else []


def _typed(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The schema's columns typed (text as ``str``, integers as ``Int64``), and a violation per
    integer column holding values that are not whole numbers (those become missing)."""
    import pandas as pd

    violations = []
    df = raw.loc[:, list(schema.COLUMNS)].copy()
    for col in schema.STRING_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    for col in schema.INTEGER_COLUMNS:
        text = df[col].astype("string").str.strip()
        blank = text.isna() | (text == "")
        numbers = pd.to_numeric(text, errors="coerce")
        bad = (~blank & numbers.isna()) | (numbers.notna() & (numbers % 1 != 0))
        if bad.any():
            sample = ", ".join(repr(v) for v in text[bad].head(3))
            violations.append(f"column {_show(col)}: {int(bad.sum())} non-integer values (e.g. {sample})")
        df[col] = numbers.where(~bad).round().astype("Int64")
    return df, violations


def _label_violations(label: pd.Series) -> list[str]:
    """Missing labels, and labels other than 0 and 1 (the first five such values shown)."""
    violations = []
    if label.isna().any():
        violations.append(f"label {_show(schema.LABEL)}: {int(label.isna().sum())} missing values")
    outside = label.notna() & ~label.isin([0, 1])
    if outside.any():
        values = sorted({int(v) for v in label[outside].unique()})[:5]
        violations.append(
            f"label {_show(schema.LABEL)}: {int(outside.sum())} values outside {{0, 1}}: {values}"
        )
    return violations


def _id_violations(ids: pd.Series) -> list[str]:
    """Missing and duplicate review ids."""
    violations = []
    if ids.isna().any():
        violations.append(f"column {_show(schema.ID)}: {int(ids.isna().sum())} missing ids")
    if ids.duplicated().any():
        violations.append(f"column {_show(schema.ID)}: {int(ids.duplicated().sum())} duplicate ids")
    return violations


def _size_violations(
    rows: int, counts: dict[int, int], min_rows: int, min_minority_fraction: float
) -> list[str]:
    """Too few kept rows, a missing class, or too rare a minority class (``counts``: per label
    of the kept rows)."""
    violations = []
    if rows < min_rows:
        violations.append(f"only {rows} rows with review text, need at least {min_rows}")
    valid_counts = {k: v for k, v in counts.items() if k in (0, 1)}
    if rows and len(valid_counts) < 2:
        violations.append(f"both classes must be present, found only {sorted(valid_counts) or 'none'}")
    elif rows:
        minority = min(valid_counts.values()) / sum(valid_counts.values())
        if minority < min_minority_fraction:
            violations.append(
                f"minority class share {minority:.4f} is below the bound {min_minority_fraction}"
            )
    return violations


def quarantine_rows(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Set aside rows that hold a NUL byte in any text cell.

    A NUL byte is a row-local defect (a bad export or disk block, not a schema change) that
    PostgreSQL text cannot even store, so the row is quarantined rather than the batch refused.

    Args:
        raw: Frame as read (any column names, string cells).

    Returns:
        The kept rows, and the quarantined ones with ``_row`` (1-based data row) and ``_reason``.
    """
    import pandas as pd

    bad = pd.Series(False, index=raw.index)
    for column in raw.columns:
        cells = raw[column]
        if cells.dtype == object or isinstance(cells.dtype, pd.StringDtype):
            bad |= cells.astype("string").str.contains("\x00", regex=False).fillna(False).astype(bool)
    quarantined = raw[bad].copy()
    quarantined.insert(0, "_reason", QUARANTINE_REASON_NUL)
    # Position, not index label: the data row a person finds in the file (after the header).
    quarantined.insert(0, "_row", [i + 1 for i, flag in enumerate(bad.tolist()) if flag])
    return raw[~bad], quarantined


def quarantine_violation(quarantined: int, total: int, limit: float = QUARANTINE_MAX_FRACTION) -> str | None:
    """The violation to report when too many rows were quarantined, else None."""
    if total == 0 or quarantined / total <= limit:
        return None
    return (
        f"{quarantined} of {total} rows ({quarantined / total:.2%}) quarantined "
        f"for a {QUARANTINE_REASON_NUL}, above the {limit:.0%} limit"
    )


def _show(column: str) -> str:
    original = schema.CANONICAL_TO_ORIGINAL.get(column)
    return f"'{column}'" if original is None else f"'{original}'"
