"""The command line's one error path: user mistakes in one line with exit code 2, the
machine's faults (disk full) likewise, and only genuine bugs with a traceback."""

import errno

import pytest

from stmodel import cli
from stmodel.cli import main


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["forecast", "--data", "x.nc", "--init", "2001", "--out", "f.nc", "--batch", "0"],
            "--batch: expected a positive whole number, got '0'",
        ),
        (["demo", "--lead-days", "-3"], "--lead-days: expected a positive whole number"),
        (
            ["downscale", "coarsen", "x.nc", "--factor", "2", "--region", "1,2,3", "--out", "c.nc"],
            "region '1,2,3': expected LAT0,LAT1,LON0,LON1",
        ),
        (["train", "--config", "tiny"], "required: --data, --workdir"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
        (
            ["forecast", "--data", "x.nc", "--init", "2001", "--out", "f.nc", "--bogus"],
            "unrecognized arguments: --bogus",
        ),
    ],
)
def test_command_line_mistakes_take_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as stopped:
        code = main(argv)
        raise SystemExit(code)
    error = capsys.readouterr().err
    assert stopped.value.code == 2
    assert error.count("\n") == 1 and expected in error, error


def _failing_command(exception):
    def run(args):
        raise exception

    return run


def test_a_full_disk_is_one_line_not_a_traceback(monkeypatch, capsys):
    full = OSError(errno.ENOSPC, "No space left on device", "/scratch/forecast.nc")
    monkeypatch.setattr(cli, "build_parser", _parser_running(_failing_command(full)))
    assert main(["models"]) == 2
    assert capsys.readouterr().err == (
        "stmodel: error: /scratch/forecast.nc: No space left on device\n"
    )


def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", _parser_running(_failing_command(KeyError("x"))))
    assert main(["models"]) == 1
    error = capsys.readouterr().err
    assert "Traceback" in error and "KeyError" in error and "please report it" in error


def _parser_running(func):
    original = cli.build_parser

    def build():
        parser = original()
        parser.set_defaults(func=func)
        for action in parser._subparsers._group_actions:
            for subparser in action.choices.values():
                subparser.set_defaults(func=func)
        return parser

    return build


def test_a_reader_that_leaves_the_pipe_is_not_an_error(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", _parser_running(_failing_command(BrokenPipeError())))
    assert main(["models"]) == 0
    assert capsys.readouterr().err == ""
