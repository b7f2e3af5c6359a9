"""Summary statistics the reports share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pct(xs: Sequence[float], q: float, digits: int = 3) -> float | None:
    """The ``q``-th percentile, rounded; None for no values."""
    return round(float(np.percentile(xs, q)), digits) if len(xs) else None
