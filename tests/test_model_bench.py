"""`stmodel bench model`: one JSON line on stdout with the figures the issue asks for."""

import argparse
import json

import pytest

from stmodel.commands import bench
from stmodel.errors import UserError

TINY_FLAGS = [
    "--grid",
    "16",
    "32",
    "--levels",
    "3",
    "--upper-vars",
    "2",
    "--surface-vars",
    "1",
    "--constants",
    "1",
    "--dim",
    "16",
    "--depths",
    "1",
    "1",
    "1",
    "1",
    "--heads",
    "2",
    "2",
    "2",
    "2",
    "--window",
    "2",
    "2",
    "4",
]


def parse(argv):
    parser = argparse.ArgumentParser(prog="stmodel")
    bench.register(parser.add_subparsers(required=True))
    return parser.parse_args(argv)


def test_bench_model_prints_one_json_line_and_writes_the_file(tmp_path, capsys):
    out = tmp_path / "results" / "bench.json"
    args = parse(
        [
            "bench",
            "model",
            "--preset",
            "tiny",
            *TINY_FLAGS,
            "--remat",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--no-peak",
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    stdout = capsys.readouterr().out.strip().splitlines()
    assert len(stdout) == 1
    result = json.loads(stdout[0])
    assert json.loads(out.read_text()) == result
    for key in ("params", "gflops_forward", "gflops_per_step", "forward_s", "train_step_s"):
        assert result[key] > 0, key
    assert result["config"]["grid"] == [16, 32] and result["config"]["remat"] is True
    # XLA's count includes the elementwise work, a large share at this tiny width.
    assert (
        result["gflops_forward_analytic"]
        <= result["gflops_forward"]
        <= 1.8 * result["gflops_forward_analytic"]
    )
    assert result["gflops_per_step"] > 2 * result["gflops_forward"]
    assert "pytorch_reference" not in result  # not the reference configuration


def test_bench_model_defaults_to_the_reference_configuration():
    args = parse(["bench", "model"])
    config = bench.model_config_from_args(args)
    assert config.grid == (32, 64) and config.n_levels == 13 and config.dim == 192
    assert config.window == (2, 6, 12) and config.patch == (2, 4, 4) and args.batch == 1
    assert (config.n_upper_vars, config.n_surface_vars, config.n_constant_fields) == (5, 4, 3)


def test_bench_model_rejects_bad_configs_with_a_user_error():
    args = parse(["bench", "model", "--dim", "20"])
    with pytest.raises(UserError, match="not divisible"):
        args.func(args)


def test_bench_model_status_goes_to_stderr_and_quiet_silences_it(tmp_path, capsys):
    from stmodel.cli import main

    out = tmp_path / "bench.json"
    fast = ["--preset", "tiny", *TINY_FLAGS, "--forward-only", "--no-peak", "--repeats", "1"]
    assert main(["bench", "model", *fast, "--warmup", "0", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1  # the JSON line only
    assert "stmodel: bench model: compiling the forward pass\n" in captured.err
    assert captured.err.endswith(f"stmodel: wrote {out}\n")

    assert main(["bench", "model", *fast, "--warmup", "0", "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 and captured.err == ""
