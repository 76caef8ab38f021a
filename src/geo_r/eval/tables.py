"""Markdown table cells and tables shared by the evaluation reports (``report.md`` and its sections)."""

from __future__ import annotations

from collections.abc import Sequence

DASH = "–"


def pct(value: float | None) -> str:
    """A percentage with two decimals, or a dash."""
    return DASH if value is None else f"{value:.2f}"


def km(value: float | None) -> str:
    """Kilometres with one decimal and thousands separators, or a dash."""
    return DASH if value is None else f"{value:,.1f}"


def num(value: float | None, digits: int = 1) -> str:
    """A number with ``digits`` decimals, or a dash."""
    return DASH if value is None else f"{value:,.{digits}f}"


def row(cells: Sequence[str]) -> str:
    """One Markdown table row; a ``|`` inside a cell is escaped."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> list[str]:
    """A Markdown table; the columns whose indices are in ``numeric`` are right-aligned."""
    sep = ["---:" if i in numeric else "---" for i in range(len(header))]
    return [row(header), row(sep), *(row(r) for r in rows)]
