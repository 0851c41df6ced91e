"""One verbosity switch: every command takes --quiet; status messages go to stderr as
`stmodel: ...` (warnings with `warning: `), and --quiet keeps only warnings and errors."""

import argparse
import logging

import pytest

from stmodel.cli import build_parser, configure_logging


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) of every parser that runs something, subcommands included."""
    if parser.get_default("func") is not None:
        yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _commands(subparser, (*path, name))


def test_every_command_takes_quiet():
    commands = dict(_commands(build_parser()))
    assert ("bench", "model") in commands and ("models",) in commands  # the walk finds them
    missing = [
        " ".join(words)
        for words, parser in commands.items()
        if parser._option_string_actions.get("--quiet") is None
        or parser._option_string_actions["--quiet"].dest != "quiet"
    ]
    assert missing == []


def test_data_generate_keeps_its_older_name_for_quiet():
    args, _ = build_parser().parse_known_args(
        ["data", "generate", "--preset", "tiny", "--out", "x.nc", "--no-progress"]
    )
    assert args.quiet is True


@pytest.fixture
def stmodel_logger():
    logger = logging.getLogger("stmodel")
    saved = logger.level, logger.propagate, list(logger.handlers)
    yield logging.getLogger("stmodel.tests")
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logger.handlers[:] = saved[2]


def test_status_messages_go_to_stderr_and_quiet_keeps_only_warnings(stmodel_logger, capsys):
    configure_logging()
    configure_logging()  # a second command in the same process: still one line per message
    stmodel_logger.info("reading %s", "a.nc")
    stmodel_logger.warning("step 6 is damaged")
    assert capsys.readouterr() == (
        "",
        "stmodel: reading a.nc\nstmodel: warning: step 6 is damaged\n",
    )

    configure_logging(quiet=True)
    stmodel_logger.info("reading %s", "a.nc")
    stmodel_logger.warning("step 6 is damaged")
    assert capsys.readouterr() == ("", "stmodel: warning: step 6 is damaged\n")
