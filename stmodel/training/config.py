"""Training configuration: frozen dataclasses, TOML presets shipped in stmodel/presets/,
key=value overrides."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stmodel.errors import UserError

# Package data, so that a plain (non-editable) install finds them too.
PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float = 5e-4  # peak, after warm-up (Pangu: 5e-4)
    warmup_steps: int = 100
    end_learning_rate_fraction: float = 0.0  # cosine decays to this fraction of the peak
    weight_decay: float = 3e-6  # Pangu's AdamW weight decay
    b1: float = 0.9
    b2: float = 0.999
    grad_clip_norm: float = 1.0
    ema_decay: float = 0.0  # 0 disables the weight EMA


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Latitude-area-weighted MAE of normalised residuals.

    Errors are divided by the std of dt-differences of each channel (the scale of
    what the model predicts), weighted by cell area, by level and by variable;
    `kind` chooses absolute or squared errors.
    """

    kind: str = "mae"  # "mae" (Pangu) or "mse" (GraphCast)
    surface_weight: float = 0.25  # Pangu weights surface 0.25 against upper air 1
    level_weighting: str = "pressure"  # "pressure" (GraphCast: proportional to p) or "uniform"
    variable_weights: tuple[tuple[str, float], ...] = ()  # e.g. (("geopotential", 2.0),)

    def __post_init__(self):
        if self.kind not in ("mae", "mse"):
            raise UserError(f"loss.kind must be 'mae' or 'mse', got {self.kind!r}")
        if self.level_weighting not in ("pressure", "uniform"):
            raise UserError(
                "loss.level_weighting must be 'pressure' or 'uniform', "
                f"got {self.level_weighting!r}"
            )

    def variable_weight(self, name: str) -> float:
        return dict(self.variable_weights).get(name, 1.0)


METHOD_KINDS = ("deterministic", "ensemble_crps")
MAX_MEMBERS = 8


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """How the network is trained (stmodel.training.methods).

    deterministic: the `loss` table's MAE or MSE of one forecast per sample.
    ensemble_crps: `members` forecasts per sample, each with its own noise (the network
    must be stochastic: model_overrides.noise_dim > 0), scored with the almost fair CRPS
    of parameter `alpha` (1: fair; AIFS-ENS's 0.95), weighted as the `loss` table says.
    """

    kind: str = "deterministic"
    members: int = 2  # per sample, 2..8
    alpha: float = 0.95
    remat_rollout: bool = False  # rematerialise each rollout step (memory for k-step fine-tuning)

    def __post_init__(self):
        if self.kind not in METHOD_KINDS:
            raise UserError(
                f"method.kind: expected one of {', '.join(METHOD_KINDS)}, got {self.kind!r}"
            )
        if not 2 <= self.members <= MAX_MEMBERS:
            raise UserError(
                f"method.members: expected 2 to {MAX_MEMBERS} members per sample (the fair "
                f"CRPS needs two), got {self.members}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"method.alpha: expected 0 to 1 (1: fair CRPS), got {self.alpha}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    name: str = "custom"
    model_preset: str = "tiny"
    # ModelConfig fields, e.g. {dim = 96, dtype = "bfloat16", remat = true}
    model_overrides: tuple[tuple[str, Any], ...] = ()
    dt_hours: int = 6
    rollout_steps: int = 1  # >1: loss over 1..N autoregressive steps
    batch_size: int = 1  # global batch
    steps: int = 1000
    seed: int = 0
    train_period: str = ""  # START/END; empty: the data's train_period attribute
    validation_period: str = ""
    validate_every: int = 200  # 0: no validation
    validation_batches: int = 8
    checkpoint_every: int = 200
    keep_checkpoints: int = 3  # the last K, plus the best by validation loss
    mesh: tuple[int, int] = (0, 1)  # (data, fsdp); data 0 = all devices / fsdp
    # Sum per-device gradients in a fixed order: bit-identical parameters for any
    # split of the same devices over processes, for one gradient copy per device.
    fixed_order_gradients: bool = False
    nan_policy: str = "stop"  # "stop" (keep last good checkpoint) or "skip" (count)
    warm_start: str = ""  # checkpoint directory to start parameters from
    freeze: tuple[str, ...] = ()  # parameter path prefixes not to train, e.g. ("encoder",)
    # Symmetries of the data to sample from, e.g. ("longitude_roll", "north_south_mirror");
    # the data must declare them (stmodel.data.symmetries).
    augment: tuple[str, ...] = ()
    # Batches read ahead of the step being trained, by as many threads (0: none). Only how
    # fast batches come: they and a resumed run are the same whatever the value.
    prefetch: int = 2
    optimizer: OptimizerConfig = OptimizerConfig()
    loss: LossConfig = LossConfig()
    method: MethodConfig = MethodConfig()

    def __post_init__(self):
        if self.method.kind == "ensemble_crps" and not dict(self.model_overrides).get("noise_dim"):
            raise UserError(
                "method.kind = 'ensemble_crps' trains members that differ only by their noise: "
                "the network needs some, e.g. model_overrides.noise_dim=32"
            )
        if self.nan_policy not in ("stop", "skip"):
            raise UserError(f"nan_policy must be 'stop' or 'skip', got {self.nan_policy!r}")
        if self.rollout_steps < 1 or self.batch_size < 1 or self.steps < 0:
            raise UserError("rollout_steps and batch_size must be >= 1 and steps >= 0")
        if self.prefetch < 0:
            raise UserError(f"prefetch must be >= 0 (0: no read-ahead), got {self.prefetch}")
        object.__setattr__(self, "model_overrides", _check_model_overrides(self))

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _build(cls, d, "config")


def _build(cls, values: dict, where: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise UserError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in values.items():
        default = defaults[name]
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            # A table sets some fields of a nested config: the others keep the defaults of
            # this class's field (DownscaleConfig's optimiser is not OptimizerConfig()).
            value = {**dataclasses.asdict(default), **value}
        kwargs[name] = _coerce(hints[name], value, f"{where}: {name}")
    return cls(**kwargs)


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a table of settings, got {value!r}")
        return _build(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, dict):  # {"dim": 96} for tuple-of-pairs fields
            value = list(value.items())
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        return tuple(_coerce(a, v, where) for a, v in zip(args, value))
    if hint is Any:
        return value
    # Strict: no value changes meaning on the way in (true is not 1.0, 2.7 is not 2).
    accepted = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(hint)
    if accepted is None:
        raise TypeError(f"{where}: no coercion for {hint!r}")  # a bug, not a user error
    if (isinstance(value, bool) and hint is not bool) or not isinstance(value, accepted):
        expected = {bool: "true or false", int: "a whole number", float: "a number"}
        raise UserError(f"{where}: expected {expected.get(hint, 'a string')}, got {value!r}")
    return hint(value)


def _check_model_overrides(config: TrainConfig) -> tuple[tuple[str, Any], ...]:
    """The model preset and its overrides, checked against ModelConfig's fields and types."""
    from stmodel.model.config import PRESETS, ModelConfig

    if config.model_preset not in PRESETS:
        raise UserError(
            f"model_preset {config.model_preset!r}: expected one of {', '.join(PRESETS)}"
        )
    hints = typing.get_type_hints(ModelConfig)
    data_given = ("grid", "n_levels", "n_upper_vars", "n_surface_vars", "n_constant_fields")
    checked = []
    for key, value in config.model_overrides:
        if key not in hints or key in data_given:
            known = sorted(set(hints) - set(data_given))
            raise UserError(
                f"model_overrides.{key}: not a model setting (the data set "
                f"{', '.join(data_given)}); known: {', '.join(known)}"
            )
        checked.append((key, _coerce(hints[key], value, f"model_overrides.{key}")))
    return tuple(checked)


def load_config(
    name_or_file: str | None,
    overrides: Sequence[str | tuple[str, Any]] = (),
    cls: type = TrainConfig,
):
    """A config of `cls` from a preset name in stmodel/presets/ (e.g. `cpu-small`) or a
    TOML file (None: the defaults), then overrides: `key=value` text as typed on a
    command line (nested keys with dots, values in TOML syntax) or (key, value) pairs.

    The one loader of every command's config: values are checked strictly against
    the dataclass's fields and types, and a mistake names where it came from.
    """
    values, where = {}, "defaults"
    if name_or_file is not None:
        preset = PRESET_DIR / f"{name_or_file}.toml"
        path = preset if preset.exists() else Path(name_or_file)
        if not path.exists():
            presets = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
            raise UserError(
                f"{name_or_file}: no such config file or preset; presets: {', '.join(presets)}"
            )
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise UserError(f"{path}: not valid TOML ({error})") from error
        if "name" in {f.name for f in dataclasses.fields(cls)}:
            values.setdefault("name", path.stem)
        where = str(path)
    config = _build(cls, values, where)  # the file's own mistakes name the file
    if not overrides:
        return config
    for item in overrides:
        if isinstance(item, tuple):
            key, value = item
        else:
            key, sep, raw = item.partition("=")
            if not sep:
                raise UserError(f"override {item!r} is not of the form key=value")
            value = _parse_value(raw.strip())
        _set_nested(values, key.strip().split("."), value)
    return _build(cls, values, "key=value override")


def _parse_value(raw: str):
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string such as bfloat16


def _set_nested(values: dict, keys: list[str], value) -> None:
    for key in keys[:-1]:
        values = values.setdefault(key, {})
    values[keys[-1]] = value
