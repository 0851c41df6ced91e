import dataclasses
import re

import pytest

from stmodel.errors import UserError
from stmodel.training.config import PRESET_DIR, TrainConfig, load_config


def test_every_preset_loads():
    names = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
    assert {"tiny", "cpu-small", "pangu-0.25"} <= set(names)
    for name in names:
        assert isinstance(load_config(name), TrainConfig)


def test_overrides_and_round_trip():
    config = load_config(
        "tiny",
        [
            "optimizer.learning_rate=3e-4",
            "batch_size=4",
            "model_overrides.dim=48",
            "nan_policy=skip",
        ],
    )
    assert config.optimizer.learning_rate == 3e-4 and config.batch_size == 4
    assert dict(config.model_overrides)["dim"] == 48 and config.nan_policy == "skip"
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_clear_errors():
    with pytest.raises(UserError, match="unknown setting.*learning_rat"):
        load_config("tiny", ["learning_rat=1"])
    with pytest.raises(UserError, match="batch_size: expected a whole number"):
        load_config("tiny", ["batch_size=many"])
    with pytest.raises(UserError, match="no such config file or preset; presets: .*tiny"):
        load_config("nonexistent")
    with pytest.raises(UserError, match="key=value"):
        load_config("tiny", ["batch_size"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.learning_rate=true", "learning_rate: expected a number, got True"),
        ("batch_size=2.7", "batch_size: expected a whole number, got 2.7"),
        ("batch_size=true", "batch_size: expected a whole number"),
        ("nan_policy=1", "nan_policy: expected a string"),
        ("model_overrides.post_norm=0", "model_overrides.post_norm: expected true or false"),
        ("model_overrides.dim=9.5", "model_overrides.dim: expected a whole number"),
        ("model_overrides.dimm=3", "model_overrides.dimm: not a model setting"),
        ("model_overrides.grid=[1,2]", "model_overrides.grid: not a model setting"),
        ("model_preset=huge", "model_preset 'huge': expected one of tiny"),
        ("loss.level_weighting=area", "level_weighting must be 'pressure' or 'uniform'"),
    ],
)
def test_values_are_never_silently_coerced(override, message):
    with pytest.raises(UserError, match=re.escape(message)):
        load_config("tiny", [override])


def test_lossless_values_are_accepted():
    config = load_config("tiny", ["optimizer.learning_rate=1", "model_overrides.dtype=bfloat16"])
    learning_rate = config.optimizer.learning_rate
    assert learning_rate == 1.0 and isinstance(learning_rate, float)
    assert dict(config.model_overrides)["dtype"] == "bfloat16"


def test_downscaling_settings_load_through_the_same_loader(tmp_path):
    from stmodel.downscaling.config import DownscaleConfig

    assert load_config(None, cls=DownscaleConfig) == DownscaleConfig()
    # A nested override keeps the other fields of DownscaleConfig's own optimiser defaults.
    config = load_config(None, ["optimizer.ema_decay=0.5", ("mode", "lora")], DownscaleConfig)
    assert config.optimizer == dataclasses.replace(DownscaleConfig().optimizer, ema_decay=0.5)
    assert config.mode == "lora"
    settings = tmp_path / "uk.toml"
    settings.write_text('mode = "frozen"\nsteps = 50\n[optimizer]\nlearning_rate = 3e-4\n')
    config = load_config(str(settings), ["steps=60"], DownscaleConfig)
    assert (config.mode, config.steps, config.optimizer.learning_rate) == ("frozen", 60, 3e-4)
    assert config.optimizer.warmup_steps == DownscaleConfig().optimizer.warmup_steps
    with pytest.raises(UserError, match=r"uk.toml: unknown setting\(s\) rollout_steps"):
        settings.write_text("rollout_steps = 2\n")
        load_config(str(settings), cls=DownscaleConfig)
    with pytest.raises(UserError, match="key=value override: lora_rank: expected a whole number"):
        load_config(None, ["lora_rank=2.5"], DownscaleConfig)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["method.kind=crps"], "method.kind: expected one of deterministic, ensemble_crps"),
        (["method.members=1"], "method.members: expected 2 to 8"),
        (["method.members=9"], "method.members: expected 2 to 8"),
        (["method.alpha=1.5"], "method.alpha: expected 0 to 1"),
        (["method.kind=ensemble_crps"], "needs some, e.g. model_overrides.noise_dim=32"),
    ],
)
def test_the_training_method_is_checked_naming_the_key(overrides, message):
    with pytest.raises(UserError, match=re.escape(message)):
        load_config("tiny", overrides)


def test_an_ensemble_method_with_a_stochastic_network_loads():
    config = load_config("tiny", ["model_overrides.noise_dim=32", "method.kind=ensemble_crps"])
    assert (config.method.members, config.method.alpha) == (2, 0.95)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_every_method_kind_of_the_config_is_a_training_method_and_back():
    """The CLI checks method.kind without importing JAX (METHOD_KINDS); the methods'
    registry must name the same kinds, each built from a config by its own class."""
    from stmodel.training.config import METHOD_KINDS
    from stmodel.training.methods import METHODS

    assert set(METHOD_KINDS) == set(METHODS)
    assert all(callable(getattr(method, "from_config", None)) for method in METHODS.values())
