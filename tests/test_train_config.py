import pytest

from stmodel.errors import UserError
from stmodel.training.config import PRESET_DIR, TrainConfig, load_config


def test_every_preset_loads():
    names = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
    assert {"tiny", "cpu-small", "pangu-0.25"} <= set(names)
    for name in names:
        assert isinstance(load_config(name), TrainConfig)


def test_overrides_and_round_trip():
    config = load_config("tiny", ["optimizer.learning_rate=3e-4", "batch_size=4",
                                  "model_overrides.dim=48", "nan_policy=skip"])
    assert config.optimizer.learning_rate == 3e-4 and config.batch_size == 4
    assert dict(config.model_overrides)["dim"] == 48 and config.nan_policy == "skip"
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_clear_errors():
    with pytest.raises(UserError, match="unknown setting.*learning_rat"):
        load_config("tiny", ["learning_rat=1"])
    with pytest.raises(UserError, match="batch_size: expected int"):
        load_config("tiny", ["batch_size=many"])
    with pytest.raises(UserError, match="no such config file or preset; presets: .*tiny"):
        load_config("nonexistent")
    with pytest.raises(UserError, match="key=value"):
        load_config("tiny", ["batch_size"])
