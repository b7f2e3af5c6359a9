"""The floors: each package imports only packages on its own floor or below, and no two modules
import each other, directly or around a loop (lazy imports inside functions included)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: rag (the core: contracts, backends, search, answers, the store) < indexer (jobs that build indexes)
#: < training (adapts the encoder) < eval (measures all of them) < service (HTTP API and CLI)
FLOORS = {"rag": 0, "indexer": 1, "training": 2, "eval": 3, "service": 4}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in its body)."""
    modules = {module_name(p): p for pkg in FLOORS for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts}
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # "from rag import generations" imports the module rag.generations; "from rag.x import f", rag.x
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            # the longest prefix that is a project module ("from rag import generations" names rag.generations)
            for n in names:
                while n and n not in modules:
                    n = n.rpartition(".")[0]
                if n and n != name:
                    found.add(n)
        out[name] = found
    return out


def test_no_import_points_to_a_higher_floor():
    wrong = sorted(f"{m} -> {t}" for m, ts in imports().items() for t in ts
                   if FLOORS[t.split(".")[0]] > FLOORS[m.split(".")[0]])
    assert wrong == []


def test_no_import_cycles():
    graph = imports()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles = []

    def visit(m, path):
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_floors_cover_every_package():
    assert {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - {"tests"} == set(FLOORS)
