"""Input offsets committed beside the work (commit/offsets.py): at once, then at most every
`every_s` while more come, each commit covering every checkpoint before it; `flush` commits
what is pending before partitions move."""

from __future__ import annotations

import asyncio
from typing import Any

from processor.stream.commit.offsets import Committer
from tests.unit.test_units import _until


class Broker:
    """The consumer's commit: logged, held until released when `hold` is set, or refused."""

    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []
        self.hold: asyncio.Event | None = None
        self.refuse = False

    async def commit(self, offsets: dict[Any, int]) -> None:
        if self.hold is not None:
            await self.hold.wait()
        if self.refuse:
            raise RuntimeError("the partitions moved")
        self.commits.append(dict(offsets))


def test_checkpoints_that_end_during_a_commit_share_the_next_one() -> None:
    async def main() -> list[dict[Any, int]]:
        broker = Broker()
        broker.hold = asyncio.Event()
        committer = Committer("test", broker.commit, every_s=0.05)
        committer.add({"a": 1})  # committed at once (held at the broker for now)
        await asyncio.sleep(0.01)
        committer.add({"a": 5, "b": 2})
        committer.add({"a": 9})
        broker.hold.set()
        await _until(lambda: len(broker.commits) == 2)
        return broker.commits

    assert asyncio.run(main()) == [{"a": 1}, {"a": 9, "b": 2}]


def test_flush_commits_what_is_pending_at_once() -> None:
    async def main() -> list[dict[Any, int]]:
        broker = Broker()
        committer = Committer("test", broker.commit, every_s=60)
        committer.add({"a": 1})
        await _until(lambda: len(broker.commits) == 1)
        committer.add({"a": 4})  # would wait a minute for the next commit
        await committer.flush()
        await committer.flush()  # nothing pending: no commit
        return broker.commits

    assert asyncio.run(main()) == [{"a": 1}, {"a": 4}]


def test_a_refused_commit_is_left_to_the_next_one() -> None:
    async def main() -> list[dict[Any, int]]:
        broker = Broker()
        broker.refuse = True
        committer = Committer("test", broker.commit, every_s=0.01)
        committer.add({"a": 1})
        await asyncio.sleep(0.05)
        broker.refuse = False
        committer.add({"a": 3})
        await _until(lambda: len(broker.commits) == 1)
        return broker.commits

    # The later offset covers the earlier one: nothing is retried, nothing is lost.
    assert asyncio.run(main()) == [{"a": 3}]
