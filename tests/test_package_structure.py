"""The package's shape: subpackages import each other without cycles, and a shipped
model's forecast stays bit for bit what it was when the model was shipped."""

import ast
import hashlib
from pathlib import Path

import jax
import numpy as np

import stmodel
from stmodel.checkpoints.global_model import CheckpointModel

PACKAGE = Path(stmodel.__file__).parent

# SHA-256 of two deterministic steps of each shipped model from fixed random states (see
# _two_steps), recorded with the code that exported the models. A refactoring that
# changes a single bit of a forecast changes these.
SHIPPED_FORECASTS = {
    "stmodel-small-6h": "3406a9c10747c09aabad0eec09704d1e2d34ea9cba424c8f8204e37d588a7732",
    "stmodel-small-24h": "725adbb5ab9d4dccda2dd53dd2c4712d3ca98c17e3736840fbce191d7db880f5",
}


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


def _two_steps(model: CheckpointModel) -> str:
    """SHA-256 of two jitted deterministic steps from a batch of 2 random states."""
    norm, rng = model.norm, np.random.default_rng(0)
    n_lat, n_lon = model.model_config.grid
    shape = (2, len(model.layout.levels), n_lat, n_lon, len(model.layout.upper_air))
    upper = norm.upper_mean[:, None, None, :] + norm.upper_std[:, None, None, :] * (
        rng.standard_normal(shape)
    )  # [batch, level, lat, lon, var]
    surface = norm.surface_mean + norm.surface_std * rng.standard_normal(
        (2, n_lat, n_lon, len(model.layout.surface))
    )  # [batch, lat, lon, var]
    upper, surface = upper.astype(np.float32), surface.astype(np.float32)

    @jax.jit
    def step(params, upper, surface):
        return model.advance(params, upper, surface, model.constants, None, deterministic=True)

    digest = hashlib.sha256()
    for _ in range(2):
        upper, surface = step(model.params, upper, surface)
        digest.update(np.asarray(upper).tobytes())
        digest.update(np.asarray(surface).tobytes())
    return digest.hexdigest()


def test_shipped_models_forecast_bit_for_bit_as_when_shipped():
    for name, expected in SHIPPED_FORECASTS.items():
        assert _two_steps(CheckpointModel.load(name)) == expected, name
