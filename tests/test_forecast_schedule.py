import pytest

from stmodel.cli import main
from stmodel.errors import UserError
from stmodel.forecasting.forecast import parse_lead
from stmodel.forecasting.schedule import greedy_steps, rollout_plan


def test_greedy_steps_match_pangu_example():
    assert greedy_steps(56, (1, 3, 6, 24)) == [24, 24, 6, 1, 1]
    assert greedy_steps(18, (6,)) == [6, 6, 6]
    with pytest.raises(ValueError, match="cannot be reached"):
        greedy_steps(9, (6, 24))


def test_plan_reaches_every_lead_with_mixed_24h_and_6h_steps():
    leads = list(range(6, 241, 6))
    plan = rollout_plan(leads, (24, 6))
    reached = {0}
    for start, dt, end in plan:
        assert start in reached and end == start + dt
        reached.add(end)
    assert set(leads) <= reached
    # 10 steps of 24 h, then up to 3 steps of 6 h from each day: 40 steps in all;
    # the deepest lead is 234 h = 9 x 24 h + 3 x 6 h, 12 steps instead of 39.
    assert len(plan) == 40
    depth = {0: 0}
    for start, _, end in plan:
        depth[end] = depth[start] + 1
    assert depth[240] == 10 and depth[234] == 12 and max(depth.values()) == 12
    assert sum(1 for _, dt, _ in plan if dt == 24) == 10


@pytest.mark.parametrize("text", ["0", "0h", "-6h", "1.5h", "abc", "nan", "infd", ""])
def test_leads_must_be_positive_whole_hours(text):
    with pytest.raises(UserError, match="expected a positive whole number"):
        parse_lead(text)


def test_lead_parsing():
    assert [parse_lead(t) for t in ("10d", "36h", "240", "1.5d")] == [240, 36, 240, 36]


@pytest.mark.parametrize("lead", ["0", "-1d"])
def test_forecast_with_a_zero_or_negative_lead_writes_nothing(tmp_path, lead, capsys):
    out = tmp_path / "f.nc"
    argv = ["forecast", "--data", "x.nc", "--init", "2000-01-01", f"--lead={lead}"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "--lead" in capsys.readouterr().err and not out.exists()
