"""The review data contract: the original file's columns and their canonical names."""

from __future__ import annotations

# Original header -> canonical snake_case name. The first column of the original file has an
# empty header, which pandas reads as "Unnamed: 0".
ORIGINAL_TO_CANONICAL: dict[str, str] = {
    "Unnamed: 0": "review_id",
    "Clothing ID": "clothing_id",
    "Age": "age",
    "Title": "title",
    "Review Text": "review_text",
    "Rating": "rating",
    "Recommended IND": "recommended",
    "Positive Feedback Count": "positive_feedback_count",
    "Division Name": "division_name",
    "Department Name": "department_name",
    "Class Name": "class_name",
}
CANONICAL_TO_ORIGINAL = {v: k for k, v in ORIGINAL_TO_CANONICAL.items()}
COLUMNS: tuple[str, ...] = tuple(ORIGINAL_TO_CANONICAL.values())

LABEL = "recommended"
TEXT = "review_text"
TITLE = "title"
ID = "review_id"
INTEGER_COLUMNS: tuple[str, ...] = (
    "review_id",
    "clothing_id",
    "age",
    "rating",
    "recommended",
    "positive_feedback_count",
)
STRING_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in INTEGER_COLUMNS)

# The registered model takes the original column names, as callers hold them.
MODEL_TEXT_COLUMN = CANONICAL_TO_ORIGINAL[TEXT]
MODEL_TITLE_COLUMN = CANONICAL_TO_ORIGINAL[TITLE]
