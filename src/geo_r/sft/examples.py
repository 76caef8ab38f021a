"""SFT examples from training records: the question a model is asked and the answer it learns to write.

Both SFT routes (the LLaMA-Factory export and the built-in TRL SFT) build their rows from these examples,
so one jsonl gives the same conversations in either route, and the same question GRPO asks afterwards.

The answer (``target``):

* ``auto`` (default): the record's gpt turn (``solution``) when it follows the answer contract exactly
  (:func:`geo_r.rewards.format.follows_contract`), otherwise a Chain-of-Region answer rendered by
  :func:`geo_r.prompts.render_answer` from the record's chain and coordinates. A VLM-R1 gpt turn such as
  ``"[48.85, 2.35]"`` is therefore replaced: SFT is there to teach the contract that GRPO's ``format``
  reward checks, and a bare pair would teach the opposite;
* ``solution``: the gpt turn whenever there is a non-blank one, whatever its form; rendered otherwise;
* ``render``: always rendered (e.g. to drop a teacher model's free-text answers).

With retrieval candidates (``record.candidates``) the question gains the candidate list
(:func:`geo_r.prompts.question_with_candidates`, as in GRPO) and a rendered answer gains its
``Candidate:`` line by :func:`geo_r.geo.candidates.candidate_target`: the nearest candidate k with *its*
coordinates when it lies within 1 km of the truth (``copied``), k with the true coordinates when within 25 km
(``named``), else ``Candidate: none`` with the true coordinates (``none``). ``auto`` keeps a gpt turn only
when it follows the contract for that prompt, ``Candidate:`` line included.

A record whose answer must be rendered but whose chain is incomplete (no country, region or city even after
offline derivation) is skipped and counted, as is one whose texts hold a media placeholder LLaMA-Factory
would count (``<image>`` in the answer, ``<video>``/``<audio>`` anywhere). Nothing here raises on bad data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from geo_r.data.schema import IMAGE_PLACEHOLDER, GeoRecord

TARGETS: tuple[str, ...] = ("auto", "solution", "render")
OTHER_MEDIA_PLACEHOLDERS: tuple[str, ...] = ("<video>", "<audio>")

# How an example's answer was chosen, and why a record was skipped.
FROM_SOLUTION = "solution"
RENDERED = "rendered"
REPLACED = "replaced"  # auto: the gpt turn did not follow the contract, so the answer was rendered instead
SKIP_INCOMPLETE_CHAIN = "incomplete_chain"
SKIP_MEDIA_PLACEHOLDER = "media_placeholder_in_text"
SKIP_PLACEHOLDER_COUNT = "placeholder_count"
# The Candidate line of a rendered answer (prompts with retrieval candidates).
CANDIDATE_COPIED = "copied"
CANDIDATE_NAMED = "named"
CANDIDATE_NONE = "none"


@dataclass(frozen=True, slots=True)
class SFTExample:
    """One supervised example: images (absolute paths), the question with one ``<image>`` per image, the answer."""

    id: str
    images: list[str]
    question: str
    answer: str
    system: str | None = None
    source: str = ""  # "file:line" of the record


@dataclass(slots=True)
class SFTBuildReport:
    """What :func:`build_sft_examples` did: answers by origin, records skipped by reason (with a first example)."""

    records: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # FROM_SOLUTION / RENDERED / REPLACED
    skipped: Counter[str] = field(default_factory=Counter)
    first_skipped: dict[str, str] = field(default_factory=dict)  # reason -> "source: detail"
    candidate_lines: Counter[str] = field(default_factory=Counter)  # rendered answers: copied / named / none

    @property
    def examples(self) -> int:
        """Number of examples built."""
        return sum(self.answers.values())

    def summary(self) -> str:
        """One line for logs, e.g. ``3 record(s) -> 2 example(s): 1 own answer, 1 rendered; skipped 1 (...)``."""
        parts = [
            f"{self.answers[FROM_SOLUTION]} own answer(s)",
            f"{self.answers[RENDERED]} rendered from the chain",
        ]
        if self.answers[REPLACED]:
            parts.append(f"{self.answers[REPLACED]} gpt turn(s) outside the answer contract replaced by a rendered answer")
        if self.candidate_lines:
            c = self.candidate_lines
            parts.append(
                f"Candidate lines of rendered answers: {c[CANDIDATE_COPIED]} copy a candidate within 1 km, "
                f"{c[CANDIDATE_NAMED]} name one within 25 km, {c[CANDIDATE_NONE]} none"
            )
        line = f"{self.records} record(s) -> {self.examples} SFT example(s): " + ", ".join(parts)
        if self.skipped:
            reasons = ", ".join(f"{k}: {n}" for k, n in self.skipped.most_common())
            first = "; ".join(f"{k} e.g. {v}" for k, v in self.first_skipped.items())
            line += f"; skipped {sum(self.skipped.values())} ({reasons}; {first})"
        return line


def question_with_placeholders(question: str, n_images: int) -> str:
    """``question`` with exactly one ``<image>`` per image: placeholders already there are kept where they are,
    none at all puts them first (as the GRPO prompt builder places the images). ValueError for another count."""
    found = question.count(IMAGE_PLACEHOLDER)
    if found == n_images:
        return question
    if found == 0:
        return IMAGE_PLACEHOLDER * n_images + question
    raise ValueError(f"{found} {IMAGE_PLACEHOLDER} placeholder(s) in the question for {n_images} image(s)")


def choose_answer(record: GeoRecord, target: str = "auto") -> tuple[str | None, str]:
    """``(answer, how)`` with ``how`` one of solution / rendered / replaced, or ``(None, skip_reason)``."""
    if target not in TARGETS:
        raise ValueError(f"unknown SFT target {target!r}; choose one of {', '.join(TARGETS)}")
    solution = record.solution if isinstance(record.solution, str) and record.solution.strip() else None
    if solution is not None and target == "solution":
        return solution, FROM_SOLUTION
    if solution is not None and target == "auto":
        from geo_r.rewards.format import follows_contract

        if follows_contract(solution, len(record.candidates or ())):
            return solution, FROM_SOLUTION
    rendered = render_from_chain(record)
    if rendered is None:
        return None, SKIP_INCOMPLETE_CHAIN
    return rendered, REPLACED if solution is not None and target == "auto" else RENDERED


def render_from_chain(record: GeoRecord) -> str | None:
    """The Chain-of-Region answer for the record's own chain and coordinates; None when a level is unknown.

    A missing country name is taken from ``country_code`` (ISO name via pycountry) when there is one. With
    candidates, the ``Candidate:`` line and coordinates follow :func:`geo_r.geo.candidates.candidate_target`.
    """
    from geo_r.prompts import render_answer

    country = _clean(record.country)
    if country is None and record.country_code:
        from geo_r.geo.names import country_name

        country = _clean(country_name(record.country_code))
    region, city = _clean(record.region), _clean(record.city)
    if country is None or region is None or city is None:
        return None
    if record.candidates:
        from geo_r.geo.candidates import candidate_target

        k, lat, lon = candidate_target(record.candidates, record.lat, record.lon)
        return render_answer(country, region, city, lat, lon, candidate=k)
    return render_answer(country, region, city, record.lat, record.lon)


def candidate_line_kind(record: GeoRecord) -> str | None:
    """How a rendered answer of ``record`` names a candidate (copied / named / none); None without candidates."""
    if not record.candidates:
        return None
    from geo_r.geo.candidates import COPY_KM, NAME_KM, nearest_candidate

    found = nearest_candidate(record.candidates, record.lat, record.lon)
    if found is None or found[1] > NAME_KM:
        return CANDIDATE_NONE
    return CANDIDATE_COPIED if found[1] <= COPY_KM else CANDIDATE_NAMED


def _clean(value: str | None) -> str | None:
    """A chain name on one line, or None when blank."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None


def build_sft_examples(
    records: Sequence[GeoRecord],
    question: str | None = None,
    target: str = "auto",
    *,
    replace_questions: bool = False,
) -> tuple[list[SFTExample], SFTBuildReport]:
    """SFT examples for ``records`` and the report of what was chosen and skipped.

    ``question`` (default :data:`geo_r.prompts.DEFAULT_QUESTION`) is asked of records without their own human
    turn, or of every record with ``replace_questions``: the same rule as the GRPO dataset, and its retrieval
    candidates follow it (:func:`geo_r.prompts.question_with_candidates`). Chains are used as they are; load
    the records with ``derive_chains=True`` to fill missing levels offline first.
    """
    from geo_r.prompts import DEFAULT_QUESTION, question_with_candidates

    if target not in TARGETS:
        raise ValueError(f"unknown SFT target {target!r}; choose one of {', '.join(TARGETS)}")
    default_question = DEFAULT_QUESTION if question is None else question
    report = SFTBuildReport(records=len(records))
    examples: list[SFTExample] = []
    for record in records:
        text = default_question if replace_questions or record.question is None else record.question
        text = question_with_candidates(text, record.candidates)
        answer, how = choose_answer(record, target)
        reason, detail = None, ""
        if answer is None:
            reason, detail = how, f"country={record.country!r} region={record.region!r} city={record.city!r}"
        else:
            media = [m for m in OTHER_MEDIA_PLACEHOLDERS if m in text or m in answer or m in (record.system or "")]
            if IMAGE_PLACEHOLDER in answer or IMAGE_PLACEHOLDER in (record.system or ""):
                media.append(IMAGE_PLACEHOLDER)
            if media:
                reason, detail = SKIP_MEDIA_PLACEHOLDER, f"{', '.join(media)} outside the question's image slots"
            else:
                try:
                    text = question_with_placeholders(text, len(record.images))
                except ValueError as exc:
                    reason, detail = SKIP_PLACEHOLDER_COUNT, str(exc)
        if reason is not None:
            report.skipped[reason] += 1
            report.first_skipped.setdefault(reason, f"{record.source or record.id}: {detail}")
            continue
        assert answer is not None
        report.answers[how] += 1
        if how != FROM_SOLUTION and (kind := candidate_line_kind(record)) is not None:
            report.candidate_lines[kind] += 1
        examples.append(
            SFTExample(
                id=record.id,
                images=list(record.images),
                question=text,
                answer=answer,
                system=record.system,
                source=record.source,
            )
        )
    return examples, report
