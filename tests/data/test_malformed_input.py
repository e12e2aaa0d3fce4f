"""Malformed review files: ingest refuses each with every violation in one message, writing nothing.

Every file is built from ``review_sentiment.synthetic``; no row of the real data enters the repo.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.errors import DataContractError
from review_sentiment.ingest import ingest
from review_sentiment.sources import iter_reviews, read_reviews
from review_sentiment.synthetic import synthetic_rows

HEADER = list(schema.ORIGINAL_TO_CANONICAL)  # "Unnamed: 0" is written as the original's empty header
Rows = list[dict[str, str]]


def csv_text(rows: Rows, header: list[str] = HEADER, newline: str = "\n") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(["" if h == "Unnamed: 0" else h for h in header])
    writer.writerows([[row.get(h, "") for h in header] for row in rows])
    return buffer.getvalue()


def rows(n: int = 400) -> Rows:
    return synthetic_rows(n, seed=3)


def edit(rows_: Rows, index: int, **cells: str) -> Rows:
    rows_[index] = {**rows_[index], **{schema.CANONICAL_TO_ORIGINAL[k]: v for k, v in cells.items()}}
    return rows_


def renamed(old: str, new: str) -> str:
    header = [new if h == old else h for h in HEADER]
    return csv_text([{(new if k == old else k): v for k, v in r.items()} for r in rows()], header)


def without(column: str) -> str:
    return csv_text(rows(), [h for h in HEADER if h != column])


def with_extra() -> str:
    return csv_text([{**r, "Sale Price": "19.99"} for r in rows()], [*HEADER, "Sale Price"])


def unbalanced_quote() -> str:
    lines = csv_text(rows()).splitlines(keepends=True)
    lines[20] = lines[20].replace(',"', ',"never closed ', 1).replace('",', ",", 1)
    return "".join(lines)


def quote_open_at_end() -> str:
    return csv_text(rows()) + '9999,1,30,,"the last review never ends,5,1,0,General,Tops,Knits\n'


def extra_field_in_first_row() -> str:
    lines = csv_text(rows()).splitlines(keepends=True)
    lines[1] = lines[1].rstrip("\n") + ",surplus\n"
    return "".join(lines)


def delimited(delimiter: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["" if h == "Unnamed: 0" else h for h in HEADER])
    writer.writerows([[row.get(h, "") for h in HEADER] for row in rows()])
    return buffer.getvalue()


def minority_below_bound() -> str:
    # 4 "not recommended" among 390 reviews with text: a 1% minority, under the 2% bound.
    out = [{**r, "Recommended IND": "1"} for r in rows()]
    for index in range(4):
        out[index]["Recommended IND"] = "0"
    return csv_text(out)


def nul_rows(count: int) -> Rows:
    """``rows()`` with a NUL byte inside the review text of ``count`` rows (data rows 11, 18, ...)."""
    out = rows()
    for index in range(count):
        text = out[10 + 7 * index]["Review Text"] or "x"
        out[10 + 7 * index]["Review Text"] = text[:5] + "\x00" + text[5:]
    return out


def truncated_gzip() -> bytes:
    packed = gzip.compress(csv_text(rows(2000)).encode())
    return packed[: len(packed) // 2]


# name -> (file content, file suffix, the start of each violation the message must list, in order)
MALFORMED: dict[str, tuple[Callable[[], str | bytes], str, list[str]]] = {
    "empty-file": (lambda: "", ".csv", ["the file is empty"]),
    "header-only": (
        lambda: csv_text([]),
        ".csv",
        ["only 0 rows with review text, need at least 200"],
    ),
    "missing-column": (lambda: without("Rating"), ".csv", ["missing columns: 'Rating'"]),
    "missing-label-and-text": (
        lambda: csv_text(rows(), [h for h in HEADER if h not in ("Review Text", "Recommended IND")]),
        ".csv",
        ["missing columns: 'Review Text', 'Recommended IND'"],
    ),
    "renamed-column": (
        lambda: renamed("Review Text", "Review"),
        ".csv",
        ["missing columns: 'Review Text'", "unexpected columns: 'Review'"],
    ),
    "extra-column": (with_extra, ".csv", ["unexpected columns: 'Sale Price'"]),
    "non-integer-age": (
        lambda: csv_text(edit(rows(), 5, age="forty")),
        ".csv",
        ["column 'Age': 1 non-integer values (e.g. 'forty')"],
    ),
    "non-integer-rating": (
        lambda: csv_text(edit(edit(rows(), 5, rating="4.5"), 6, rating="five")),
        ".csv",
        ["column 'Rating': 2 non-integer values (e.g. '4.5', 'five')"],
    ),
    "label-2": (
        lambda: csv_text(edit(rows(), 9, recommended="2")),
        ".csv",
        ["label 'Recommended IND': 1 values outside {0, 1}: [2]"],
    ),
    "nan-label-empty": (
        lambda: csv_text(edit(rows(), 9, recommended="")),
        ".csv",
        ["label 'Recommended IND': 1 missing values"],
    ),
    "nan-label-text": (
        lambda: csv_text(edit(rows(), 9, recommended="NaN")),
        ".csv",
        [
            "column 'Recommended IND': 1 non-integer values (e.g. 'NaN')",
            "label 'Recommended IND': 1 missing values",
        ],
    ),
    "single-class": (
        lambda: csv_text([{**r, "Recommended IND": "1"} for r in rows()]),
        ".csv",
        ["both classes must be present, found only [1]"],
    ),
    "too-few-rows": (
        lambda: csv_text([r for r in rows(300) if r["Review Text"]][:150]),
        ".csv",
        ["only 150 rows with review text, need at least 200"],
    ),
    "duplicate-ids": (
        lambda: csv_text(edit(edit(rows(), 1, review_id="0"), 2, review_id="0")),
        ".csv",
        ["column 'Unnamed: 0': 2 duplicate ids"],
    ),
    "many-problems-at-once": (
        lambda: csv_text(
            [
                {**r, "Sale Price": "1"}
                for r in edit(edit(edit(rows(), 3, age="old"), 4, rating="4.5"), 5, recommended="7")
            ],
            [*HEADER, "Sale Price"],
        ),
        ".csv",
        [
            "unexpected columns: 'Sale Price'",
            "column 'Age': 1 non-integer values (e.g. 'old')",
            "column 'Rating': 1 non-integer values (e.g. '4.5')",
            "label 'Recommended IND': 1 values outside {0, 1}: [7]",
        ],
    ),
    "unbalanced-quotes": (unbalanced_quote, ".csv", ["cannot parse: Error tokenizing data"]),
    "quote-open-at-end": (quote_open_at_end, ".csv", ["cannot parse: Error tokenizing data. C error: EOF"]),
    "latin-1-bytes": (
        lambda: csv_text(edit(rows(), 7, title="Très jolie")).encode("latin-1"),
        ".csv",
        ["not valid UTF-8 at byte"],
    ),
    "extra-field-in-first-row": (extra_field_in_first_row, ".csv", ["a row has more fields than the header"]),
    "truncated-gzip": (truncated_gzip, ".csv.gz", ["cannot parse: Compressed file ended"]),
    "semicolon-delimited": (
        lambda: delimited(";"),
        ".csv",
        ["the header has no ',': the file looks delimited by ';'"],
    ),
    "tab-delimited": (
        lambda: delimited("\t"),
        ".csv",
        ["the header has no ',': the file looks delimited by '\\t'"],
    ),
    "class-ratio-below-bound": (
        minority_below_bound,
        ".csv",
        ["minority class share 0.0103 is below the bound 0.02"],
    ),
    # 5 of 400 rows (1.25%) hold a NUL byte: above the 1% quarantine limit.
    "nul-bytes-above-limit": (
        lambda: csv_text(nul_rows(5)),
        ".csv",
        ["5 of 400 rows (1.25%) quarantined for a NUL byte, above the 1% limit"],
    ),
    "nul-bytes-above-limit-and-a-bad-label": (
        lambda: csv_text(edit(nul_rows(5), 100, recommended="2")),
        ".csv",
        [
            "5 of 400 rows (1.25%) quarantined for a NUL byte, above the 1% limit",
            "label 'Recommended IND': 1 values outside {0, 1}: [2]",
        ],
    ),
}


def _write_case(tmp_path: Path, case: str) -> Path:
    make, suffix, _ = MALFORMED[case]
    content = make()
    source = tmp_path / f"{case}{suffix}"
    if isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content, encoding="utf-8", newline="")
    return source


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_is_refused_listing_every_violation(tmp_path: Path, case: str) -> None:
    expected = MALFORMED[case][2]
    source = _write_case(tmp_path, case)
    output = tmp_path / "out"
    output.mkdir()  # the task's run-scoped folder, as Airflow would hand it over

    with pytest.raises(DataContractError) as caught:
        ingest(source, output)

    error = caught.value
    assert len(error.violations) == len(expected), error.violations
    for got, want in zip(error.violations, expected, strict=True):
        assert got.startswith(want), error.violations
    message = str(error)
    assert message.startswith(f"data contract violated by {source} ({len(expected)}): ")
    for violation in error.violations:
        assert violation in message
    assert "\n" not in message  # one line: the CLI prints it to stderr as is
    assert list(output.iterdir()) == []


# The files the reader itself refuses, before any contract check.
PARSE_FAILURES = (
    "empty-file",
    "unbalanced-quotes",
    "quote-open-at-end",
    "latin-1-bytes",
    "extra-field-in-first-row",
    "truncated-gzip",
    "semicolon-delimited",
    "tab-delimited",
)


@pytest.mark.parametrize("chunk_rows", [7, 100_000])
@pytest.mark.parametrize("case", PARSE_FAILURES)
def test_scoring_reads_in_chunks_by_the_same_rules(tmp_path: Path, case: str, chunk_rows: int) -> None:
    """Scoring reads through the same reader in chunks: the same files refused, the same words."""
    source = _write_case(tmp_path, case)
    with pytest.raises(DataContractError) as whole:
        read_reviews(source)
    with pytest.raises(DataContractError) as chunked:
        list(iter_reviews(source, chunk_rows))
    assert whole.value.violations[0].startswith(MALFORMED[case][2][0])
    assert chunked.value.violations == whole.value.violations
    assert chunked.value.source == whole.value.source == str(source)


def test_chunks_of_a_good_file_are_the_whole_file(tmp_path: Path) -> None:
    source = tmp_path / "reviews.csv"
    source.write_text(csv_text(_quirky_rows()), encoding="utf-8", newline="")
    chunks = list(iter_reviews(source, 7))
    assert max(len(c) for c in chunks) == 7
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), read_reviews(source))


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_bad_sample_fraction_is_refused_before_writing(tmp_path: Path, fraction: float) -> None:
    source = tmp_path / "reviews.csv"
    source.write_text(csv_text(rows()), encoding="utf-8")
    with pytest.raises(DataContractError, match=rf"sample_fraction must be in \(0, 1\], got {fraction}"):
        ingest(source, tmp_path / "out", sample_fraction=fraction)
    assert not (tmp_path / "out").exists()


def _quirky_rows() -> Rows:
    """Synthetic rows carrying the real file's quirks: entities, newlines in cells, empty titles."""
    quirky = rows()
    quirky[0] = {**quirky[0], "Review Text": "I didn&#39;t expect\nsuch a soft\r\nfabric", "Title": ""}
    quirky[1] = {**quirky[1], "Division Name": "Initmates", "Title": 'The "perfect", dress'}
    return quirky


@pytest.mark.parametrize(
    ("encoding", "newline"),
    [("utf-8", "\n"), ("utf-8-sig", "\n"), ("utf-8", "\r\n"), ("utf-8-sig", "\r\n")],
    ids=["plain", "bom", "crlf", "bom-crlf"],
)
def test_bom_and_crlf_are_accepted(tmp_path: Path, encoding: str, newline: str) -> None:
    quirky = _quirky_rows()
    source = tmp_path / "reviews.csv"
    source.write_bytes(csv_text(quirky, newline=newline).encode(encoding))
    assert source.read_bytes().startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")

    snap = pd.read_parquet(ingest(source, tmp_path / "out"))

    with_text = [r for r in quirky if r["Review Text"]]
    assert len(snap) == len(with_text)
    assert snap[schema.ID].tolist() == [int(r["Unnamed: 0"]) for r in with_text]  # BOM not in the header
    assert snap[schema.TEXT].tolist() == [r["Review Text"] for r in with_text]
    assert snap.loc[0, schema.TEXT] == "I didn&#39;t expect\nsuch a soft\r\nfabric"
    assert snap.loc[1, "division_name"] == "Initmates"
    assert snap.loc[1, schema.TITLE] == 'The "perfect", dress'
    assert snap.loc[0, schema.TITLE] == ""


def test_gzip_is_read_like_plain_csv(tmp_path: Path) -> None:
    text = csv_text(_quirky_rows())
    plain, packed = tmp_path / "r.csv", tmp_path / "r.csv.gz"
    plain.write_text(text, encoding="utf-8", newline="")
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    pd.testing.assert_frame_equal(
        pd.read_parquet(ingest(plain, tmp_path / "a")), pd.read_parquet(ingest(packed, tmp_path / "b"))
    )


@pytest.mark.parametrize("case", list(MALFORMED))
def test_refusal_is_deterministic(tmp_path: Path, case: str) -> None:
    make, suffix, _ = MALFORMED[case]
    content = make()
    source = tmp_path / f"{case}{suffix}"
    if isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content, encoding="utf-8", newline="")
    messages = set()
    for attempt in range(2):
        with pytest.raises(DataContractError) as caught:
            ingest(source, tmp_path / f"out{attempt}")
        messages.add(str(caught.value))
    assert len(messages) == 1, messages


def test_nul_rows_below_the_limit_are_quarantined(tmp_path: Path) -> None:
    """3 of 400 rows (0.75%) hold a NUL byte: they go to quarantine.jsonl, the rest is ingested."""
    import json

    from review_sentiment.artifacts import read_json
    from review_sentiment.layout import QUARANTINE_NAME, REPORT_NAME

    bad = nul_rows(3)
    source = tmp_path / "reviews.csv"
    source.write_text(csv_text(bad), encoding="utf-8", newline="")
    outputs = []
    for attempt in range(2):  # a retry gives the same files
        snapshot = ingest(source, tmp_path / f"out{attempt}")
        outputs.append(((snapshot.parent / QUARANTINE_NAME).read_bytes(), snapshot.read_bytes()))
    assert outputs[0] == outputs[1]

    lines = outputs[0][0].decode("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["row"] for r in records] == [11, 18, 25]  # data rows, 1-based, as in the file
    assert {r["reason"] for r in records} == {"NUL byte"}
    assert [r["cells"]["Unnamed: 0"] for r in records] == [bad[i]["Unnamed: 0"] for i in (10, 17, 24)]
    assert all("\x00" in r["cells"]["Review Text"] for r in records)  # kept as is, JSON-escaped
    assert all("\x00" not in line for line in lines)

    snap = pd.read_parquet(snapshot)
    quarantined_ids = {int(r["cells"]["Unnamed: 0"]) for r in records}
    assert not quarantined_ids & set(snap[schema.ID])
    assert not snap[schema.TEXT].str.contains("\x00", regex=False).any()
    report = read_json(snapshot.parent / REPORT_NAME)
    assert report["quarantined"] == 3
    assert report["rows_in"] == 397
    assert len(snap) == 397 - report["dropped_no_text"]


def test_a_clean_retry_removes_a_stale_quarantine_file(tmp_path: Path) -> None:
    from review_sentiment.layout import QUARANTINE_NAME

    source, out = tmp_path / "reviews.csv", tmp_path / "out"
    source.write_text(csv_text(nul_rows(2)), encoding="utf-8", newline="")
    assert (ingest(source, out).parent / QUARANTINE_NAME).is_file()
    source.write_text(csv_text(rows()), encoding="utf-8", newline="")
    assert not (ingest(source, out).parent / QUARANTINE_NAME).exists()
