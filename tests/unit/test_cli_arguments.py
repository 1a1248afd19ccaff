"""The command line refuses nonsense before it starts anything, and names mistyped settings."""

from __future__ import annotations

import pytest

from processor.cli import main
from processor.cli.common import unknown_variables


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--rate", "-5"],
        ["simulate", "--customers", "0"],
        ["simulate", "--invalid-fraction", "1.5"],
        ["simulate", "--duration", "soon"],
        ["demo", "--refresh", "0"],
        ["tail", "actions", "--max", "-1"],
    ],
)
def test_numbers_out_of_range_are_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"argument {argv[-2]}: {argv[-1]!r} is not " in capsys.readouterr().err


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    env = {
        "TOUCHPOINT_KAFKA_BOOTSTRAPS": "x",
        "TOUCHPOINT_KAFKA_BOOTSTRAP": "y",
        "TOUCHPOINT_SOMETHING_ELSE": "z",
        "PATH": "/bin",
    }
    assert unknown_variables(env) == [
        "TOUCHPOINT_KAFKA_BOOTSTRAPS is not a setting, ignored; "
        "did you mean TOUCHPOINT_KAFKA_BOOTSTRAP?",
        "TOUCHPOINT_SOMETHING_ELSE is not a setting, ignored",
    ]


def test_unknown_variables_are_warned_about_in_the_log_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    import orjson

    from processor.cli.common import load_settings

    for name in [n for n in os.environ if n.startswith("TOUCHPOINT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TOUCHPOINT_LOG_LEVELS", "debug")
    load_settings()
    assert capsys.readouterr().err == (
        "touchpoint: warning: TOUCHPOINT_LOG_LEVELS is not a setting, ignored; "
        "did you mean TOUCHPOINT_LOG_LEVEL?\n"
    )
    monkeypatch.setenv("TOUCHPOINT_LOG_FORMAT", "json")
    load_settings()
    line = orjson.loads(capsys.readouterr().err)
    assert (line["level"], line["message"]) == (
        "warning",
        "TOUCHPOINT_LOG_LEVELS is not a setting, ignored; did you mean TOUCHPOINT_LOG_LEVEL?",
    )
