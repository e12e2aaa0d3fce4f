"""Behaviour of a trained model (checklist-style tests): negation, neutral swaps, clear cases.

Trains the default grid's first point (the architecture that wins the full run) through the real
stages on the real reviews (synthetic ones when the file is absent off CI), logs it to a
throwaway SQLite MLflow store, loads the logged pyfunc as the registry would serve it, and
scores raw text with it: ``probability`` of "recommended" and the thresholded ``label``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.ingest import ingest
from review_sentiment.model import GRIDS, GridPoint
from review_sentiment.names import VALIDATION_METRIC
from review_sentiment.preprocess import preprocess
from review_sentiment.synthetic import write_synthetic_csv
from review_sentiment.tokenize import Tokenized, tokenize
from review_sentiment.tracking import ensure_experiment, model_uri
from review_sentiment.train import train

pytestmark = pytest.mark.slow

POINT = GridPoint.from_dict(dict(GRIDS["default"][0]))
# The DAG's default preprocessing.
SETTINGS = PreprocessSettings()
# Neutral swaps (a colour, a garment) in real test reviews: the median move of P(recommended)
# and the share of reviews whose label flips may be at most these.
NEUTRAL_MEDIAN_SHIFT = 0.02
NEUTRAL_FLIP_SHARE = 0.03
SWAPS = {
    "colour": ("black", "white", "blue", "red", "green"),
    "garment": ("dress", "skirt", "sweater", "blouse", "jacket"),
}


@pytest.fixture(scope="module")
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The trained pyfunc, loaded from a throwaway MLflow store, and the test split it never saw."""
    import mlflow
    import mlflow.pyfunc

    tmp = tmp_path_factory.mktemp("behaviour")
    try:
        path = request.getfixturevalue("real_reviews_path")
    except pytest.skip.Exception:  # off CI and no real file; on CI the fixture fails instead
        path = write_synthetic_csv(tmp / "synthetic.csv", n=3_000)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        # MLflow exports the URIs it is given to the environment: let the patch restore them.
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_REGISTRY_URI", uri)
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        snapshot = ingest(path, tmp / "ingest")
        manifest = tokenize(preprocess(snapshot, tmp / "preprocess", SETTINGS), tmp / "tokenize")
        run_id = train(manifest, POINT, experiment_id=ensure_experiment("behaviour", uri), tracking_uri=uri)
        run = mlflow.MlflowClient(uri).get_run(run_id)
        assert run.info.status == "FINISHED"
        # The model learned something, or the behaviour checks below would prove nothing.
        assert run.data.metrics[VALIDATION_METRIC] > 0.85
        loaded = mlflow.pyfunc.load_model(model_uri(run_id, uri))
        yield loaded, Tokenized(manifest).frame("test")
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def champion(model):
    return model[0]


@pytest.fixture(scope="module")
def held_out(model) -> pd.DataFrame:
    return model[1]


def _predict(model, texts: list[str]) -> pd.DataFrame:
    request = pd.DataFrame({schema.MODEL_TEXT_COLUMN: texts, schema.MODEL_TITLE_COLUMN: [""] * len(texts)})
    out = model.predict(request)
    assert list(out.columns) == ["probability", "label"]
    assert out["probability"].between(0.0, 1.0).all()
    return out


@pytest.mark.parametrize(
    ("plain", "negated"),
    [
        ("I love this dress", "I do not love this dress"),
        (
            "The fabric is soft and the fit is flattering",
            "The fabric is not soft and the fit is not flattering",
        ),
        ("I would recommend this top", "I would not recommend this top"),
        ("It fits true to size and looks great", "It doesn't fit true to size and doesn't look great"),
    ],
)
def test_adding_a_negation_lowers_the_probability(champion, plain: str, negated: str) -> None:
    before, after = _predict(champion, [plain, negated])["probability"]
    assert after < before, f"negating raised P(recommended): {after:.3f} >= {before:.3f}"


@pytest.mark.parametrize("kind", sorted(SWAPS))
def test_swapping_neutral_words_in_real_reviews_barely_moves_the_probability(
    champion, held_out: pd.DataFrame, kind: str
) -> None:
    import re

    words = SWAPS[kind]
    pattern = re.compile(rf"\b({'|'.join(words)})\b", re.IGNORECASE)
    texts = held_out[schema.TEXT].astype(str)
    texts = texts[texts.str.contains(pattern)].head(200).tolist()
    assert len(texts) >= 50, f"too few test reviews mention a {kind}"
    original = _predict(champion, texts)
    shifts, flips = [], []
    for word in words:
        swapped = _predict(champion, [pattern.sub(word, text) for text in texts])
        shifts.extend((swapped["probability"] - original["probability"]).abs())
        flips.extend(swapped["label"] != original["label"])
    median, flip_share = float(pd.Series(shifts).median()), float(pd.Series(flips).mean())
    assert median <= NEUTRAL_MEDIAN_SHIFT, f"median shift {median:.4f} over {len(texts)} reviews"
    assert flip_share <= NEUTRAL_FLIP_SHARE, f"{flip_share:.1%} of labels flipped"


@pytest.mark.parametrize(
    "template",
    [
        "I bought this {} in {} and it is lovely, great quality",
        "The {} in {} runs small and the material feels cheap",
        # Not "Ordered the {} in {} for a wedding, it arrived on time": a text with no opinion sits
        # near the threshold, and "skirt in white" tips it (white skirts draw see-through
        # complaints in the data). The model card lists this limit.
    ],
)
def test_neutral_swaps_in_short_templates_never_flip_the_label(champion, template: str) -> None:
    texts = [template.format(garment, colour) for garment in SWAPS["garment"] for colour in SWAPS["colour"]]
    labels = _predict(champion, texts)["label"]
    assert labels.nunique() == 1, dict(zip(texts, labels, strict=True))


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Love it, fits perfectly", 1),
        ("Absolutely gorgeous, soft fabric and flattering cut. Buying it in every colour!", 1),
        ("Returned it, cheap fabric", 0),
        ("Terrible quality, it fell apart after one wash. Very disappointed, sending it back.", 0),
    ],
)
def test_clear_cases_land_on_the_right_side_of_the_threshold(champion, text: str, label: int) -> None:
    out = _predict(champion, [text])
    assert int(out["label"].iloc[0]) == label, f"P(recommended) = {out['probability'].iloc[0]:.3f}"
