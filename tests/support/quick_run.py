"""The quick run, declared once: ``make smoke``'s conf (scripts/smoke_conf.json, which the Makefile
passes to ``airflow dags test``). The stack, fault and embedded-run tests trigger the same conf,
changing only what their assertion needs (``{**QUICK_CONF, "force_promote": True}``)."""

from __future__ import annotations

import json
from typing import Any

from review_sentiment.config import PROJECT_ROOT

QUICK_CONF_PATH = PROJECT_ROOT / "scripts" / "smoke_conf.json"
# A sample of the real reviews, two small grid points, a few epochs; the baseline is trained and
# recorded but not required (tiny models are a plumbing check, not a quality bar).
QUICK_CONF: dict[str, Any] = json.loads(QUICK_CONF_PATH.read_text())
