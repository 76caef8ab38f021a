"""The package layout tells the architecture: packages import only downwards, and no modules import each other
in a circle (imports inside functions included: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "geo_r"

# Layer of each package (or top-level module) of geo_r: a module may import its own package and lower layers.
LAYERS: dict[str, int] = {
    "defaults": 0, "atomic_io": 0, "prompts": 0, "geo": 0,
    "data": 1, "rewards": 1,
    "models": 2, "runtime": 2,
    "trainer": 3, "eval": 3, "sft": 3, "retrieval": 3,
    "grpo": 4, "demo": 4,
    "app": 5, "cli": 6, "grpo_jsonl": 6,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every geo_r module ``path`` imports, anywhere in the file (relative imports resolved; ``from pkg import
    submodule`` counts as importing the submodule, not the package's ``__init__``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("geo_r")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.startswith("geo_r"):
                subs = {f"{mod}.{a.name}" for a in node.names} & modules
                found |= subs if len(subs) == len(node.names) else {mod, *subs}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {name: {m for m in _imports(path, set(modules)) if m in modules and m != name}
            for name, path in modules.items()}


def _package(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for m in _graph() if m != "geo_r"}
    assert packages <= set(LAYERS), f"packages without a layer in this test: {sorted(packages - set(LAYERS))}"


def test_packages_import_only_downwards() -> None:
    upward = [
        f"{src} -> {dst}"
        for src, dsts in _graph().items() if src != "geo_r"
        for dst in dsts
        if _package(dst) != _package(src) and LAYERS[_package(dst)] >= LAYERS[_package(src)]
    ]
    assert not upward, "imports that point up or sideways:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"modules importing each other in a circle: {cycles}"


def test_no_private_names_imported_across_modules() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("geo_r"):
                offenders += [f"{path.relative_to(SRC)}: {node.module}.{a.name}"
                              for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offenders, "private names imported from another module:\n" + "\n".join(offenders)


# ---------------------------------------------------------------- shell launchers: one home for the shared defaults

REPO = SRC.parents[1]
SHELL_FILES = [*REPO.glob("run_scripts/**/*.sh"), *REPO.glob("run_scripts/**/*.sbatch"),
               *REPO.glob("local_scripts/**/*.sh"), *REPO.glob("bench/*.sh"), REPO / "setup.sh", REPO / ".ci" / "run"]


def _shell_defaults() -> dict[str, int]:
    import re

    text = (REPO / "local_scripts" / "lib" / "defaults.sh").read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(GEO_R_DEFAULT_\w+)=(\d+)", text, re.M)}


def test_shell_defaults_equal_the_python_defaults_and_the_llamafactory_yamls() -> None:
    import yaml

    from geo_r import defaults

    assert _shell_defaults() == {
        "GEO_R_DEFAULT_MAX_PIXELS": defaults.DEFAULT_MAX_PIXELS,
        "GEO_R_DEFAULT_MIN_PIXELS": defaults.DEFAULT_MIN_PIXELS,
        "GEO_R_DEFAULT_DIST_TIMEOUT": defaults.DEFAULT_DIST_TIMEOUT_S,
        "GEO_R_DEFAULT_MASTER_PORT": defaults.DEFAULT_MASTER_PORT,
    }
    for path in sorted((REPO / "data_config" / "sft").glob("*_sft.yaml")):
        cfg = yaml.safe_load(path.read_text())
        assert cfg["image_max_pixels"] == defaults.DEFAULT_MAX_PIXELS, path.name
        assert cfg["image_min_pixels"] == defaults.DEFAULT_MIN_PIXELS, path.name


def test_launchers_take_the_defaults_from_defaults_sh() -> None:
    """No launcher repeats a default's number: it names GEO_R_DEFAULT_* instead."""
    import re

    values = {str(v) for v in _shell_defaults().values()}
    offenders = []
    for path in SHELL_FILES:
        if path.name == "defaults.sh":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(re.search(rf"(?<![\w.]){v}(?![\w.])", code) for v in values):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "defaults repeated outside local_scripts/lib/defaults.sh:\n" + "\n".join(offenders)


def test_every_local_scripts_path_a_script_names_exists() -> None:
    """Moving a shell library must update every script that sources it."""
    import re

    missing = []
    for path in SHELL_FILES:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for ref in re.findall(r"local_scripts/[\w./-]+\.(?:sh|json|txt|py|yaml)", line):
                if not (REPO / ref).exists():
                    missing.append(f"{path.relative_to(REPO)}:{n}: {ref}")
    assert not missing, "scripts name files that do not exist:\n" + "\n".join(missing)


def test_no_file_cites_a_note_the_repository_does_not_have() -> None:
    import re

    missing = []
    for path in [*SRC.rglob("*.py"), *(REPO / "bench").glob("*.py")]:
        for ref in re.findall(r"(?:\.\./shared/)?notes/[\w./-]+\.md", path.read_text()):
            if not (REPO / ref).is_file():
                missing.append(f"{path.relative_to(REPO)}: {ref}")
    assert not missing, "citations of notes outside the repository:\n" + "\n".join(missing)
