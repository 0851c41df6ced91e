"""`stmodel bench ensemble`: one JSON line with the ensemble's costs, side by side. No
timed assertions: only that every figure is there, positive and finite."""

import json
import math

import pytest

from stmodel.benchmarks import ensemble
from stmodel.cli import main

KEYS = (
    "member_step_per_s",
    "deterministic_step_per_s",
    "member_step_cost_vs_deterministic",
    "training_s_per_sample_deterministic",
    "training_s_per_sample_ensemble_crps",
    "training_cost_per_sample_vs_deterministic",
    "learned_ensemble_s",
    "dycore_ensemble_s",
    "dycore_over_learned",
)


def _recording(calls, function, what):
    def record(*args, **kwargs):
        calls.append(what(*args, **kwargs))
        return function(*args, **kwargs)

    return record


def test_bench_ensemble_prints_and_writes_every_figure(tmp_path, capsys, monkeypatch):
    # What the ensembles are made of: the states of each stepped batch, the CRPS
    # method's members, the dycore's members.
    states, methods, dycore = [], [], []
    for name, calls, what in (
        ("steps_run", states, lambda model, stepper, upper, *_: upper.shape[0]),
        ("training_step_run", methods, lambda config, model: config.method),
        ("dycore_run", dycore, lambda *args, members: members),
    ):
        monkeypatch.setattr(ensemble, name, _recording(calls, getattr(ensemble, name), what))
    out = tmp_path / "results" / "bench_ensemble.json"
    tiny = ["--preset", "tiny", "--members", "3", "--batch", "1", "--days", "1"]
    assert main(["bench", "ensemble", *tiny, "--repeats", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1  # the JSON line; status on stderr
    assert "stmodel: bench ensemble: " in captured.err
    result = json.loads(captured.out)
    assert json.loads(out.read_text()) == result
    for key in KEYS:
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["members"] == 3 and result["batch"] == 1 and result["days"] == 1
    assert states == [1, 1, 3] and dycore == [3]  # inference x 2, then the ensemble
    assert [(m.kind, m.members) for m in methods][1] == ("ensemble_crps", 3)
    assert result["noise_dim"] > 0 and result["learned_steps_per_member"] == 4
    assert result["parameters_stochastic"] > result["parameters_deterministic"]
    targets = result["targets"]
    assert targets["member_step_cost_vs_deterministic_at_most"] == 1.1
    assert targets["training_cost_per_sample_vs_deterministic_at_most"] == 3
    assert result["dycore_over_learned"] == pytest.approx(
        result["dycore_ensemble_s"] / result["learned_ensemble_s"]
    )
    assert result["member_step_cost_vs_deterministic"] == pytest.approx(
        result["deterministic_step_per_s"] / result["member_step_per_s"]
    )
    assert result["meets_targets"]["member_step_cost_vs_deterministic"] == (
        result["member_step_cost_vs_deterministic"] <= 1.1
    )


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--members", "9"], "--members 9: method.members: expected 2 to 8"),
        (["--preset", "huge"], "--preset 'huge': expected one of"),
        (["--batch", "0"], "--batch: expected a positive whole number, got '0'"),
    ],
)
def test_bench_ensemble_bad_arguments_take_one_line(flags, expected, capsys):
    with pytest.raises(SystemExit) as stopped:
        raise SystemExit(main(["bench", "ensemble", *flags]))
    error = capsys.readouterr().err
    assert stopped.value.code == 2
    assert error.count("\n") == 1 and expected in error, error
