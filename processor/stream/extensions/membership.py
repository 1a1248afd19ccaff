"""The worker's place in the consumer group, kept in its data directory across restarts.

A worker writes its member id to its data directory whenever it completes a join, and does not
leave the group when it stops; the next worker started on that directory (after a SIGTERM, a
crash or a kill) joins under the same id and takes the place back in one rebalance. Leaving and
joining anew costs two rebalances per restart, and on the embedded broker (Tansu 0.6) it could
break the group for good: a leader that left while the group was forming (a rebalance under
way, which the leaving member may not know of yet) stayed the group's leader, and every member
that joined afterwards waited for an assignment from a member that was gone (two workers
stopped together, or one stopped during another's start). A member that does not come back is
dropped by the broker after the session timeout (TOUCHPOINT_SESSION_TIMEOUT_S), leader or not,
and its partitions move then. An id the broker no longer knows (its session expired) is refused
at the join, and the worker joins anew.

Kafka's static membership (`group.instance.id`) would say the same in the protocol, but the
embedded broker cannot form a group of static members.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from processor.stream.extensions import internals

log = logging.getLogger(__name__)

#: The member id of the last worker on a data directory.
MEMBER_FILE = "group.member"


class Membership:
    """The member id kept in `data_dir`, handed to a starting consumer and kept up to date."""

    def __init__(self, data_dir: Path, file: str = MEMBER_FILE) -> None:
        self.path = data_dir / file

    def kept(self) -> str:
        """The member id of the last worker here ("" when there is none)."""
        try:
            return self.path.read_text("utf-8").strip()
        except FileNotFoundError:
            return ""

    def resume(self, coordinator: Any) -> None:
        """Make aiokafka's group `coordinator` (started, not yet joined) join under the kept
        member id, keep the id of every join it completes, and close without LeaveGroup."""
        kept = self.kept()
        if kept:
            coordinator.member_id = kept
            log.info("rejoining the consumer group as %s", kept)
        complete, leave = internals.join_hooks(coordinator)

        async def keep_and_complete(generation: int, member_id: str, *rest: Any) -> Any:
            if member_id != self.kept():
                self.path.write_text(member_id + "\n", "utf-8")
            return await complete(generation, member_id, *rest)

        async def stay_unless_idle() -> None:
            if internals.is_closing(coordinator):
                coordinator.reset_generation()  # closing: forget it here, stay at the broker
            else:
                # aiokafka leaves the group of a consumer that stopped polling while it runs.
                await leave()

        internals.set_join_hooks(coordinator, keep_and_complete, stay_unless_idle)
