"""The worked examples in docs/rewards.md are what the reward functions compute (recomputed here), and every
relative link between the README and docs/ pages points at a file the repository has."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REWARDS_MD = REPO / "docs" / "rewards.md"
# Pages other branches add (docs/vllm.md, docs/retrieval.md, docs/scale.md); the README keeps a link slot for them.
PAGES_FROM_OTHER_BRANCHES = {"docs/vllm.md", "docs/retrieval.md", "docs/scale.md"}


def test_distance_map_table_is_what_the_maps_compute():
    from geo_r.geo.distance import haversine_km
    from geo_r.rewards import RewardArguments
    from geo_r.rewards.distance import distance_map

    paris = (48.8566, 2.3522)
    places = {"Versailles": (48.8049, 2.1204), "Lyon": (45.764, 4.8357), "Berlin": (52.52, 13.405),
              "New York": (40.7128, -74.006), "Sydney": (-33.8688, 151.2093)}
    maps = {k: distance_map(RewardArguments(distance_reward=k)) for k in ("paper", "geoscore", "anneal", "threshold")}
    text = REWARDS_MD.read_text()
    for name, (lat, lon) in places.items():
        d = float(haversine_km(*paris, lat, lon))
        anneal = " / ".join(f"{maps['anneal'](d, p):.3f}" for p in (0.0, 0.5, 1.0))
        row = (f"| {name} | {d:.1f} | {maps['paper'](d, 0):.3f} | {maps['geoscore'](d, 0):.3f} | {anneal} | "
               f"{maps['threshold'](d, 0):.1f} |")
        assert row in text, f"docs/rewards.md lacks the computed row\n{row}"


def test_region_reward_table_is_what_the_reward_computes():
    from geo_r.prompts import render_answer
    from geo_r.rewards import RewardArguments, get_reward_funcs

    (region,) = get_reward_funcs(["region"], RewardArguments())
    louvre = dict(lat=[48.8606], lon=[2.3376], country=["France"], region=["Île-de-France"], city=["Paris"])
    answers = {
        "France / Île-de-France / Paris, Paris coordinates": ("France", "Île-de-France", "Paris", 48.8566, 2.3522),
        "France / Île-de-France / Paris, London coordinates": ("France", "Île-de-France", "Paris", 51.5074, -0.1278),
        "France / Auvergne-Rhône-Alpes / Lyon": ("France", "Auvergne-Rhône-Alpes", "Lyon", 45.764, 4.8357),
        "France / Bavaria / Munich": ("France", "Bavaria", "Munich", 48.1351, 11.582),
        "Belgium / Brussels / Brussels": ("Belgium", "Brussels", "Brussels", 50.8503, 4.3517),
    }
    text = REWARDS_MD.read_text()
    for label, answer in answers.items():
        (score,) = region(None, [render_answer(*answer)], None, **louvre)
        assert f"| {label} | {score:.2f} |" in text, label
    (none,) = region(None, ["no answer"], None, **louvre)
    assert f"| no answer | {none:.2f} |" in text


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a markdown page."""
    anchors = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return anchors


def test_relative_links_in_readme_and_docs_resolve():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "local_scripts" / "README.md"]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            if "://" in target:
                continue
            path = (page.parent / target).resolve() if target else page
            rel = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
            if rel in PAGES_FROM_OTHER_BRANCHES:
                continue
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
                broken.append(f"{page.relative_to(REPO)} -> {target}#{anchor}")
    assert not broken, "links to files or headings that do not exist:\n" + "\n".join(broken)


def test_readme_keeps_the_ci_commands_and_stays_short():
    text = (REPO / "README.md").read_text()
    for marker, command in (("<!-- ci:main-command -->", "bash setup.sh && bash run_scripts/run_demo.sh"),
                            ("<!-- ci:test-command -->", "bash setup.sh && bash run_scripts/run_tests.sh")):
        after = text.split(marker, 1)[1].lstrip()
        assert after.startswith(f"```bash\n{command}\n```"), marker
    assert len(text.splitlines()) <= 300, "the README is the ten-minute read; details go to docs/"
