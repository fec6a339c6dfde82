"""The package's layers and which may import which: the one statement of the structure.

``tests/test_architecture.py`` checks every module's imports against `ALLOWED`, and that README's
structure drawing equals `drawing()`. Run ``python -m vehicle_assessment.architecture`` to print it.

Layers, innermost first. An arrow ``a → b`` means "a imports b"; arrows only point inwards.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = "vehicle_assessment"
ROOT = Path(__file__).resolve().parent

# Each layer: the modules (dotted, relative to the package) that form it, by prefix.
LAYERS: dict[str, tuple[str, ...]] = {
    "domain": ("domain",),
    "ports": ("ports", "endpoint_protocol"),
    "settings": ("settings",),
    # Adapter code both runtimes share: the vPIC client, how upload tracking reads back.
    "adapters.common": ("adapters.vpic", "adapters.upload_tracking"),
    "adapters.local": ("adapters.local", "adapters.memory"),
    "adapters.aws": ("adapters.aws",),
    "pipeline": ("pipeline", "indexing", "report", "reviewing"),
    "aws_runtime": ("aws_runtime",),
    # Clients of a deployed stack (`submit`, `smoke`): they speak the API's models and probe the adapters.
    "remote": ("remote",),
    # Entry points and the local composition root: they may wire any adapter into the pipeline.
    "entry": ("cli", "architecture", "evaluation", "adapters.local.wiring", "serve"),
}

# What each layer may import besides itself. The domain imports only itself.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "ports": {"domain"},
    "settings": {"domain"},
    "adapters.common": {"domain", "ports", "settings"},
    "adapters.local": {"domain", "ports", "settings", "adapters.common"},
    "adapters.aws": {"domain", "ports", "settings", "adapters.common"},
    "pipeline": {"domain", "ports", "settings"},
    "aws_runtime": {"domain", "ports", "settings", "adapters.common", "adapters.aws", "pipeline"},
    "remote": {"domain", "ports", "settings", "adapters.aws", "aws_runtime"},
    "entry": {
        "domain",
        "ports",
        "settings",
        "adapters.common",
        "adapters.local",
        "adapters.aws",
        "pipeline",
        "aws_runtime",
        "remote",
    },
}


def layer_of(module: str) -> str:
    """The layer of a dotted module name relative to the package (``domain.vin`` → ``domain``)."""
    best = ""
    found = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, found = prefix, layer
    if found is None:
        raise LookupError(f"{PACKAGE}.{module} belongs to no layer: add it to LAYERS")
    return found


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, relative dotted names, type-only imports included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] or [node.module]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                found.add(name.removeprefix(PACKAGE).lstrip("."))
    return found


def _resolve(name: str, root: Path) -> str:
    """``from pkg.domain import limits`` names a module; ``from pkg.ports import X`` a symbol in one."""
    parts = name.split(".")
    while parts:
        candidate = root.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return name


def layer_edges(root: Path = ROOT) -> dict[str, set[str]]:
    """Layer → the other layers its modules import."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        imports = package_imports(path)
        if path.name == "__init__.py" and not imports:
            continue  # a bare package marker belongs to no layer
        source = layer_of(module)
        edges[source]  # every layer appears, even one that imports nothing
        for imported in imports:
            target = layer_of(_resolve(imported, root)) if imported else source
            if target != source:
                edges[source].add(target)
    return edges


def violations(root: Path = ROOT) -> list[str]:
    return [
        f"{source} → {target}"
        for source, targets in sorted(layer_edges(root).items())
        for target in sorted(targets - ALLOWED[source])
    ]


def drawing() -> str:
    """One line per layer, outermost first: what it imports."""
    edges = layer_edges()
    lines = []
    for layer in reversed(list(LAYERS)):
        targets = [t for t in LAYERS if t in edges.get(layer, set())]
        lines.append(f"{layer:<15} → {', '.join(targets) if targets else '(nothing: imports only itself)'}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(drawing())
    for violation in violations():
        print(f"NOT ALLOWED: {violation}")
