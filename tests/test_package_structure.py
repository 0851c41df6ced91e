"""The package's shape: subpackages import each other without cycles, and a shipped
model's forecast stays what it was when the model was shipped, to float32 rounding on any
CPU kind (see tests/shipped_golden.py)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shipped_golden

import stmodel
from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.model.parameter_names import named_arrays, replace_by_name
from stmodel.models import shipped_models

PACKAGE = Path(stmodel.__file__).parent

ROOT = Path(__file__).resolve().parents[1]


def _subpackage_imports() -> dict[str, set[str]]:
    """subpackage -> the other subpackages its modules import (at any depth of the module)."""
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    edges: dict[str, set[str]] = {name: set() for name in subpackages}
    for name in subpackages:
        for module in (PACKAGE / name).rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    targets = [node.module]
                elif isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                else:
                    continue
                for target in targets:
                    parts = target.split(".")
                    if parts[0] == "stmodel" and len(parts) > 1 and parts[1] in subpackages:
                        edges[name].add(parts[1])
        edges[name].discard(name)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for other in sorted(edges[node]):
            if state.get(other) == "open":
                return [*path[path.index(other) :], other] if other in path else [node, other]
            if other not in state:
                found = visit(other, [*path, other])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_subpackages_import_each_other_without_cycles():
    edges = _subpackage_imports()
    assert {"checkpoints", "training", "forecasting", "downscaling", "model"} <= set(edges)
    cycle = _cycle(edges)
    assert cycle is None, f"import cycle between subpackages: {' -> '.join(cycle)}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.fixture(scope="module")
def shipped():
    """{name: (model, its fingerprint now, its recorded fingerprint)}."""
    reference = shipped_golden.read_reference()
    assert set(reference) == {m.name for m in shipped_models()}, "a shipped model has no reference"
    return {
        name: (model, shipped_golden.fingerprint(model), reference[name])
        for name, model in ((n, CheckpointModel.load(n)) for n in sorted(reference))
    }


def test_shipped_models_forecast_as_when_shipped_to_float32_rounding(shipped):
    for name, (_, actual, reference) in shipped.items():
        assert shipped_golden.outside_rounding(actual, reference) == [], name


def test_the_golden_check_catches_a_changed_parameter(shipped):
    """One weight of one block changed by 1 % of its tensor's std fails the check."""
    model, _, reference = shipped["stmodel-small-6h"]
    name = "network.backbone.encoder_fine.blocks.0.mlp.fc2.kernel.value"
    kernel = np.array(named_arrays(model.params)[name])
    kernel[0, 0] += 0.01 * kernel.std()
    changed = shipped_golden.fingerprint(model, replace_by_name(model.params, {name: kernel}))
    assert shipped_golden.outside_rounding(changed, reference)


def test_the_golden_check_holds_on_a_narrower_instruction_set():
    """XLA's AVX code (no FMA, AVX2 or AVX-512) gives the recorded fingerprints too, as a
    machine of another CPU kind, with code of another vector width, must."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_max_isa=AVX".strip()
    env = {**os.environ, "XLA_FLAGS": flags}
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "shipped_golden.py"), "--check"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
