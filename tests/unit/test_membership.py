"""Membership: the member id kept in the data directory, and no LeaveGroup when closing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from processor.stream.extensions.membership import MEMBER_FILE, Membership


class FakeCoordinator:
    """The parts of aiokafka's GroupCoordinator that Membership uses."""

    def __init__(self) -> None:
        self.member_id = ""
        self.generation = -1
        self._closing: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self.completed: list[tuple[int, str]] = []
        self.left = 0

    async def _on_join_complete(self, generation: int, member_id: str, *rest: Any) -> None:
        self.completed.append((generation, member_id))

    async def _maybe_leave_group(self) -> None:
        self.left += 1
        self.reset_generation()

    def reset_generation(self) -> None:
        self.member_id, self.generation = "", -1


def test_a_worker_joins_as_the_last_member_on_its_directory_and_never_leaves(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        first = FakeCoordinator()
        Membership(tmp_path).resume(first)
        assert first.member_id == ""  # nothing kept yet: a new member
        await first._on_join_complete(1, "m-1", "faust", b"")
        assert (tmp_path / MEMBER_FILE).read_text() == "m-1\n"
        assert first.completed == [(1, "m-1")]  # aiokafka's own completion still runs
        first._closing.set_result(None)
        await first._maybe_leave_group()
        assert first.left == 0  # closing: no LeaveGroup

        second = FakeCoordinator()
        Membership(tmp_path).resume(second)
        assert second.member_id == "m-1"  # the same place in the group
        await second._on_join_complete(2, "m-2", "faust", b"")  # the broker gave a new one
        assert Membership(tmp_path).kept() == "m-2"
        await second._maybe_leave_group()  # not closing: a consumer that stopped polling
        assert second.left == 1

    asyncio.run(run())
