"""The package's structure: no import circle (counting imports inside functions too), and the training
loop needs no dataset loader."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "moe_mlora"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_circle():
    # a package's __init__ re-exporting its submodules is not a circle of modules: leave the package edges out
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in import_graph().items()}
    assert cycles(graph) == []


def test_the_training_loop_and_the_approaches_import_no_dataset_loader():
    code = ("import sys, moe_mlora.training.loop, moe_mlora.training.approaches; "
            "print(sorted(m for m in sys.modules if m.startswith('moe_mlora.data')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


# The floors of the house, lowest first: a module may import from its own floor or any floor below, never above.
# The training package has two floors: its definitions (a phase as data, the settings, metrics, batch orders),
# which the methods build on, and the loop and schedules, which run the methods.
FLOORS = (
    ("moe_mlora", "moe_mlora.errors", "moe_mlora.settings", "moe_mlora.files", "moe_mlora.paths", "moe_mlora.auc"),
    ("moe_mlora.features", "moe_mlora.batches"),
    ("moe_mlora.data",),
    ("moe_mlora.layers",),
    ("moe_mlora.models",),
    ("moe_mlora.adapters",),
    ("moe_mlora.training.phase", "moe_mlora.training.config", "moe_mlora.training.metrics", "moe_mlora.training.samplers"),
    ("moe_mlora.methods",),
    ("moe_mlora.training",),
    ("moe_mlora.run_config",),
    ("moe_mlora.serving",),
    ("moe_mlora.experiments",),
    ("moe_mlora.api",),
    ("moe_mlora.cli", "moe_mlora.__main__"),
)


def floor_of(module: str) -> int:
    """The floor of the longest prefix that names `module` (moe_mlora.training.phase before moe_mlora.training)."""
    matches = [(len(prefix), level) for level, prefixes in enumerate(FLOORS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is on no floor: add it to FLOORS"
    return max(matches)[1]


def test_no_import_runs_up_a_floor():
    upward = [f"{module} -> {target}" for module, targets in import_graph().items() for target in targets
              if floor_of(target) > floor_of(module)]
    assert upward == []
