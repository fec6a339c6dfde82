"""The layering of the package holds, and README's structure drawing is the real one."""

from __future__ import annotations

from pathlib import Path

import pytest

from vehicle_assessment import architecture

README = Path(__file__).resolve().parents[1] / "README.md"


def test_no_import_runs_outwards() -> None:
    assert architecture.violations() == []


def test_the_domain_imports_only_itself() -> None:
    assert architecture.layer_edges()["domain"] == set()


def test_readme_drawing_is_current() -> None:
    assert architecture.drawing() in README.read_text(), "run: python -m vehicle_assessment.architecture"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "vehicle_assessment"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_outward_import_is_reported(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "ports.py": "class Port: ...\n",
            "domain/__init__.py": "",
            "domain/rules.py": "from vehicle_assessment.ports import Port\n",
        },
    )
    assert architecture.violations(root) == ["domain → ports"]


def test_a_module_outside_every_layer_is_refused(tmp_path: Path) -> None:
    root = _package(tmp_path, {"helpers.py": "from vehicle_assessment.ports import Port\n", "ports.py": ""})
    with pytest.raises(LookupError, match=r"vehicle_assessment\.helpers belongs to no layer"):
        architecture.layer_edges(root)
