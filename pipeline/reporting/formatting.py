"""How the report writes a figure for reading: thousands separated, signs on changes, percentages, small
probabilities in scientific notation, long texts cut; "–" where there is no value."""
from __future__ import annotations

import pandas as pd


def _missing(value) -> bool:
    return value is None or pd.isna(value)


def number(value, digits: int = 0) -> str:
    return "–" if _missing(value) else f"{value:,.{digits}f}"


def signed(value, digits: int = 0) -> str:
    if _missing(value):
        return "–"
    return f"{0.0:.{digits}f}" if round(value, digits) == 0 else f"{value:+.{digits}f}"


def percent(value, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{value * 100:.{digits}f}%"


def probability(value) -> str:
    return "–" if _missing(value) else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
