"""What loading a dataset found: problems located by ``file:line``, counts per file and layout, and the error.

Every check in :mod:`geo_r.data` reports a :class:`Problem` instead of raising, so one pass over the data
collects all of them; :class:`LoadReport` keeps the totals (exact) and the problems themselves (capped, so
a file of 500k bad lines does not fill memory), and :class:`DataValidationError` turns them into one
message that names the first ones and counts the rest by kind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Problem kinds. Errors make a record unusable; warnings are reported and the record is kept.
MALFORMED_JSON = "malformed_json"
UNKNOWN_LAYOUT = "unknown_layout"
BAD_IMAGE_FIELD = "bad_image_field"
IMAGE_NOT_FOUND = "image_not_found"
IMAGE_UNREADABLE = "image_unreadable"
MISSING_COORDINATES = "missing_coordinates"
BAD_COORDINATES = "bad_coordinates"
PLACEHOLDER_MISMATCH = "placeholder_mismatch"
BAD_CONVERSATIONS = "bad_conversations"
BAD_FIELD = "bad_field"
DUPLICATE_ID = "duplicate_id"

ERROR_KINDS: tuple[str, ...] = (
    MALFORMED_JSON,
    UNKNOWN_LAYOUT,
    BAD_IMAGE_FIELD,
    IMAGE_NOT_FOUND,
    IMAGE_UNREADABLE,
    MISSING_COORDINATES,
    BAD_COORDINATES,
    PLACEHOLDER_MISMATCH,
    BAD_CONVERSATIONS,
    BAD_FIELD,
)
WARNING_KINDS: tuple[str, ...] = (DUPLICATE_ID,)

# How many errors, and how many warnings, a report keeps verbatim (the counts are always exact).
MAX_KEPT_PROBLEMS = 10_000
# How many problems the DataValidationError message lists.
MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: its kind (see ``ERROR_KINDS``/``WARNING_KINDS``), where it is and what is wrong."""

    kind: str
    file: str
    line: int
    message: str
    element: int | None = None  # index in a .json array; None for .jsonl lines

    @property
    def is_warning(self) -> bool:
        """True for findings that do not make the record unusable (duplicate ids)."""
        return self.kind in WARNING_KINDS

    @property
    def location(self) -> str:
        """``file:line`` (plus ``[element i]`` for records read from a .json array)."""
        where = f"{self.file}:{self.line}"
        return where if self.element is None else f"{where} [element {self.element}]"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass(slots=True)
class FileReport:
    """Per data file: how many records were read and kept, and which layouts they used."""

    path: str
    image_folder: str
    format: str = "jsonl"  # "jsonl" or "json-array"
    records_read: int = 0
    records_kept: int = 0
    records_invalid: int = 0
    layouts: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class LoadReport:
    """Everything :func:`geo_r.data.load_records` found: exact counts, and up to ``MAX_KEPT_PROBLEMS`` errors
    and as many warnings verbatim."""

    files: list[FileReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    error_counts: Counter[str] = field(default_factory=Counter)
    warning_counts: Counter[str] = field(default_factory=Counter)
    images_checked: int = 0
    chains_derived: int = 0
    seconds: float = 0.0

    def add(self, problem: Problem) -> None:
        """Count ``problem`` and keep it while its category (errors, warnings) is under the cap."""
        counts = self.warning_counts if problem.is_warning else self.error_counts
        counts[problem.kind] += 1
        if counts.total() <= MAX_KEPT_PROBLEMS:
            self.problems.append(problem)

    @property
    def n_errors(self) -> int:
        """Total number of error findings (not records: one record can have several)."""
        return sum(self.error_counts.values())

    @property
    def n_warnings(self) -> int:
        """Total number of warning findings."""
        return sum(self.warning_counts.values())

    @property
    def records_read(self) -> int:
        """Records (lines or array elements) read over all files."""
        return sum(f.records_read for f in self.files)

    @property
    def records_kept(self) -> int:
        """Records that passed every check, over all files."""
        return sum(f.records_kept for f in self.files)

    @property
    def records_invalid(self) -> int:
        """Records with at least one error, over all files."""
        return sum(f.records_invalid for f in self.files)

    @property
    def layouts(self) -> Counter[str]:
        """Kept records per recognised layout, over all files."""
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.layouts)
        return total

    def errors(self) -> list[Problem]:
        """The kept error findings, in file order."""
        return [p for p in self.problems if not p.is_warning]

    def warnings(self) -> list[Problem]:
        """The kept warning findings, in file order."""
        return [p for p in self.problems if p.is_warning]

    def sort(self, file_order: dict[str, int]) -> None:
        """Order the kept problems by file (as given on the command line), line and element."""
        self.problems.sort(key=lambda p: (file_order.get(p.file, len(file_order)), p.line, p.element or 0))


def format_counts(counts: Counter[str]) -> str:
    """``"image_not_found: 3, bad_coordinates: 1"``, most frequent first."""
    return ", ".join(f"{kind}: {n}" for kind, n in counts.most_common())


class DataValidationError(ValueError):
    """The data has problems; the message lists the first ones as ``file:line: what`` and counts all by kind."""

    def __init__(self, report: LoadReport, max_listed: int = MAX_LISTED_PROBLEMS) -> None:
        self.report = report
        errors = report.errors()
        lines = [
            f"{report.n_errors} problem(s) in {report.records_invalid} of {report.records_read} record(s) "
            f"({format_counts(report.error_counts)}):"
        ]
        listed = errors[:max_listed]
        lines += [f"  {p}" for p in listed]
        if report.n_errors > len(listed):
            lines.append(f"  ... and {report.n_errors - len(listed)} more")
        lines.append(
            "Fix the data, or pass skip_invalid=True (--skip_invalid) to drop these records; "
            "`geo-r validate` prints the full summary."
        )
        super().__init__("\n".join(lines))


class DataConfigError(ValueError):
    """The data arguments themselves are wrong (file or folder missing, counts of paths and folders differ)."""
