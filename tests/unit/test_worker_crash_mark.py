"""A worker that did not stop cleanly leaves a mark; the next one discards the local tables."""

from __future__ import annotations

from pathlib import Path

from processor.stream.worker import RUNNING_MARK, discard_state_after_crash


def test_a_clean_directory_keeps_its_tables(tmp_path: Path) -> None:
    tables = tmp_path / "v1" / "tables" / "journey-0.db"
    tables.mkdir(parents=True)
    assert discard_state_after_crash(tmp_path) is False
    assert tables.is_dir()
    assert (tmp_path / RUNNING_MARK).is_file()  # removed by run_worker after a clean stop


def test_after_a_crash_the_tables_are_rebuilt_from_the_changelogs(tmp_path: Path) -> None:
    tables = tmp_path / "v1" / "tables" / "journey-0.db"
    tables.mkdir(parents=True)
    (tmp_path / RUNNING_MARK).write_text("left by a killed worker")
    assert discard_state_after_crash(tmp_path) is True
    assert not (tmp_path / "v1" / "tables").exists()
    assert (tmp_path / RUNNING_MARK).is_file()  # this worker runs now
