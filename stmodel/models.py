"""Pretrained models shipped inside the package, and `--checkpoint NAME` resolution.

A shipped model is a folder under ``stmodel/pretrained/`` holding parameters only
(no optimiser state): ``model.json`` (configs, layout, time step, provenance),
``arrays.npz`` (parameters by path name, normalisation statistics, constants and
grid) and ``MODEL_CARD.md``. Parameters may be stored in bfloat16 to halve the
package; they are cast back to float32 on loading.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np

from stmodel.atomic_files import atomic_folder
from stmodel.errors import UserError

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
PRETRAINED_FORMAT = "stmodel-pretrained-1"
# What `stmodel forecast` uses without --checkpoint: steps combined hierarchically.
DEFAULT_MODELS = ("stmodel-small-24h", "stmodel-small-6h")
# ... and for an ensemble of members that differ by the models' own noise.
DEFAULT_ENSEMBLE_MODELS = ("stmodel-small-24h-ens", "stmodel-small-6h-ens")


def default_models(members: int = 1, perturb: float = 0.0, lagged: int | None = None) -> list[str]:
    """The shipped models a forecast uses when none is named: the stochastic pair for an
    ensemble of several members; the deterministic pair for one forecast and for the
    deterministic model's ensembles (perturbed initial states, lagged)."""
    if members > 1 and not perturb and lagged is None:
        return list(DEFAULT_ENSEMBLE_MODELS)
    return list(DEFAULT_MODELS)


PARAM_PREFIX = "params/"


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    name: str
    path: Path
    dt_hours: int
    summary: str


def shipped_models() -> list[ShippedModel]:
    """Every model in the package, by name."""
    models = []
    for folder in PRETRAINED_DIR.glob("*/model.json"):
        meta = json.loads(folder.read_text())
        models.append(
            ShippedModel(
                folder.parent.name, folder.parent, int(meta["dt_hours"]), meta.get("summary", "")
            )
        )
    return sorted(models, key=lambda m: (-m.dt_hours, m.name))


def is_shipped_model_folder(path: Path) -> bool:
    """Whether ``path`` holds a shipped-model folder's model.json: one `models export`
    wrote, and may replace."""
    try:
        return json.loads((Path(path) / "model.json").read_text()).get("format") == (
            PRETRAINED_FORMAT
        )
    except (OSError, ValueError, AttributeError):
        return False


def is_pretrained(path: Path) -> bool:
    return (Path(path) / "model.json").is_file() and (Path(path) / "arrays.npz").is_file()


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A training workdir, a checkpoints/ folder, a shipped model's folder, or its name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = {m.name: m.path for m in shipped_models()}
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    names = ", ".join(shipped) or "none"
    raise UserError(
        f"{name_or_path}: no such checkpoint directory or shipped model "
        f"(shipped models: {names}; `stmodel models` lists them)"
    )


def write_pretrained(
    out: Path,
    meta: dict,
    params: dict[str, np.ndarray],
    static: dict[str, np.ndarray],
    param_dtype: str,
    card: str,
) -> None:
    """Writes a shipped-model folder (whole: temporary folder, then rename)."""
    arrays = {
        f"{PARAM_PREFIX}{name}": _stored(value, param_dtype) for name, value in params.items()
    }
    arrays.update({name: np.asarray(value) for name, value in static.items()})
    meta = {**meta, "format": PRETRAINED_FORMAT, "param_dtype": param_dtype}
    with atomic_folder(out, is_shipped_model_folder, "a shipped-model folder") as temporary:
        np.savez(temporary / "arrays.npz", **arrays)
        (temporary / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
        (temporary / "MODEL_CARD.md").write_text(card)


def read_pretrained(path: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(meta, float32 parameters by path name, static arrays) of a shipped-model folder."""
    path = Path(path)
    try:
        meta = json.loads((path / "model.json").read_text())
        with np.load(path / "arrays.npz") as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read the pretrained model ({error})") from None
    if meta.get("format") != PRETRAINED_FORMAT:
        raise UserError(
            f"{path / 'model.json'}: format {meta.get('format')!r}, expected {PRETRAINED_FORMAT!r}"
        )
    params = {
        name[len(PARAM_PREFIX) :]: _loaded(value, meta["param_dtype"])
        for name, value in arrays.items()
        if name.startswith(PARAM_PREFIX)
    }
    static = {name: value for name, value in arrays.items() if not name.startswith(PARAM_PREFIX)}
    return meta, params, static


def _stored(value: np.ndarray, dtype: str) -> np.ndarray:
    value = np.asarray(value, np.float32)
    if dtype == "bfloat16":  # npz has no bfloat16: keep its bits as uint16
        return value.astype(ml_dtypes.bfloat16).view(np.uint16)
    return value


def _loaded(value: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return value.view(ml_dtypes.bfloat16).astype(np.float32)
    return np.asarray(value, np.float32)
