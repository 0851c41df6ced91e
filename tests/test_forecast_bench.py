import json

from stmodel.cli import main


def test_bench_forecast_prints_times_and_ratio(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "forecast",
                "--preset",
                "tiny",
                "--days",
                "1",
                "--repeats",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == json.loads(out.read_text())
    assert result["learned_6h_steps"] == 4 and result["learned_24h_plus_6h_steps"] == 1
    for key in ("learned_6h_s", "learned_24h_plus_6h_s", "dycore_s"):
        assert result[key] > 0
    assert result["speedup_6h_vs_dycore"] == result["dycore_s"] / result["learned_6h_s"]
