"""The account of one conversion: rows read, written and skipped (by reason, with examples), images, chains
and countries. Every count is exact; only the examples are capped, so memory stays flat in the row count."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .chains import ChainCounts
from .rows import Skip

MAX_EXAMPLES = 5
MAX_DUPLICATES = 5  # file names found in several folders kept as examples (all are counted)
TOP_COUNTRIES = 10


@dataclass
class PrepareSummary:
    """Counts and notes of one ``geo-r prepare`` run; :meth:`format` prints it, :meth:`to_dict` saves it."""

    format: str
    input: str
    output: str
    rows_read: int = 0
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    images_checked: bool = False
    image_lookups: Counter[str] = field(default_factory=Counter)
    n_duplicate_names: int = 0  # file names found in two or more folders of the image tree
    duplicate_names: dict[str, list[str]] = field(default_factory=dict)  # a few of them -> their paths
    chains: ChainCounts = field(default_factory=ChainCounts)
    countries: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    skipped_file: str | None = None
    seconds: float = 0.0

    @property
    def n_skipped(self) -> int:
        """Rows not written, all reasons together."""
        return sum(self.skipped.values())

    def add_skip(self, skip: Skip) -> None:
        """Count one skipped row and keep it as an example if its reason has few."""
        self.skipped[skip.reason] += 1
        examples = self.examples.setdefault(skip.reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(f"{skip.where}: {skip.detail}")

    def format_text(self) -> str:
        """The summary printed at the end of a run."""
        lines = [f"Prepared {self.output} from {self.input} (format {self.format}) in {self.seconds:.1f} s"]
        skipped = ", ".join(f"{k} {n}" for k, n in self.skipped.most_common()) or "none"
        lines.append(
            f"Rows: {self.rows_read} read, {self.written} written, {self.n_skipped} skipped ({skipped})"
        )
        for reason, _ in self.skipped.most_common():
            for example in self.examples.get(reason, []):
                lines.append(f"  {reason}: {example}")
            more = self.skipped[reason] - len(self.examples.get(reason, []))
            if more > 0:
                lines.append(f"  {reason}: ... and {more} more")
        if self.images_checked:
            found = sum(n for k, n in self.image_lookups.items() if k not in ("missing", "ambiguous"))
            how = ", ".join(
                f"{n} {k.replace('_', ' ')}"
                for k, n in sorted(self.image_lookups.items())
                if k not in ("missing", "ambiguous") and n
            )
            line = f"Images: {found} found ({how or 'none'}), {self.image_lookups['missing']} missing"
            if self.image_lookups["ambiguous"]:
                line += f" ({self.image_lookups['ambiguous']} of them match several files by name)"
            lines.append(line)
            if self.n_duplicate_names:
                lines.append(
                    f"Duplicate file names: {self.n_duplicate_names} name(s) found in more than one folder; rows "
                    "naming them by file name alone are skipped, give the path relative to --images instead"
                )
                for name, paths in self.duplicate_names.items():
                    lines.append(f"  {name}: {', '.join(paths)}")
                if self.n_duplicate_names > len(self.duplicate_names):
                    lines.append(f"  ... and {self.n_duplicate_names - len(self.duplicate_names)} more")
        else:
            lines.append("Images: not checked (no --images folder given)")
        c = self.chains
        line = f"Region chains: {c.from_source} complete from the source, {c.completed} completed offline (GeoNames)"
        if c.incomplete:
            line += (
                f", {c.incomplete} incomplete (source country differs from the geocoded one, near a border)"
            )
        if c.unknown_codes:
            line += f"; {c.unknown_codes} unknown country code(s) replaced offline"
        lines.append(line)
        if self.countries:
            top = ", ".join(f"{k} {n}" for k, n in self.countries.most_common(TOP_COUNTRIES))
            lines.append(f"Top countries ({len(self.countries)} in all): {top}")
        lines.extend(f"Note: {note}" for note in self.notes)
        if self.skipped_file:
            lines.append(f"Skipped rows are listed in {self.skipped_file}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the summary."""
        return {
            "format": self.format,
            "input": self.input,
            "output": self.output,
            "rows_read": self.rows_read,
            "written": self.written,
            "skipped": dict(self.skipped),
            "skipped_examples": self.examples,
            "images_checked": self.images_checked,
            "image_lookups": dict(self.image_lookups),
            "duplicate_names": self.n_duplicate_names,
            "duplicate_name_examples": self.duplicate_names,
            "chains": vars(self.chains).copy(),
            "countries": dict(self.countries.most_common()),
            "notes": list(self.notes),
            "skipped_file": self.skipped_file,
            "seconds": round(self.seconds, 3),
        }
