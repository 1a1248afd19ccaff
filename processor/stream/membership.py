"""The worker's place in the consumer group, kept in its data directory across restarts.

A worker that stops does not leave the group: it writes its member id to its data directory,
and the next worker started on that directory joins under the same id, taking the place back
in one rebalance. Leaving and joining anew costs two rebalances per restart, and on the
embedded broker (Tansu 0.6) it could break the group for good: a leader that left while the
group was forming (a rebalance under way, which the leaving member may not know of yet) stayed
the group's leader, and every member that joined afterwards waited for an assignment from a
member that was gone (two workers stopped together, or one stopped during another's start).
A member that does not come back is dropped by the broker after the session timeout
(TOUCHPOINT_SESSION_TIMEOUT_S), leader or not, and its partitions move then. An id the broker
no longer knows (its session expired) is refused at the join, and the worker joins anew.

Kafka's static membership (`group.instance.id`) would say the same in the protocol, but the
embedded broker cannot form a group of static members.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The member id of the last worker on a data directory; gone while a worker holds it.
MEMBER_FILE = "group.member"


class Membership:
    """The member id kept in `data_dir`, handed to a starting consumer and taken back when it
    stops."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / MEMBER_FILE

    def resume(self, coordinator: Any) -> None:
        """Make aiokafka's group `coordinator` (started, not yet joined) join under the kept
        member id, and keep its id instead of sending LeaveGroup when it closes."""
        try:
            kept = self.path.read_text("utf-8").strip()
        except FileNotFoundError:
            kept = ""
        self.path.unlink(missing_ok=True)  # a worker killed later must not reuse a stale id
        if kept:
            coordinator.member_id = kept
            log.info("rejoining the consumer group as %s", kept)
        leave, reset = coordinator._maybe_leave_group, coordinator.reset_generation
        #: The id the broker gave; a failed commit or sync in a rebalance forgets it, but the
        #: broker still knows it (for an id it no longer knows, the next join starts afresh).
        given = [kept]

        def remember_and_reset() -> None:
            given[0] = coordinator.member_id or given[0]
            reset()

        async def keep_unless_idle() -> None:
            if not coordinator._closing.done():
                # aiokafka leaves the group of a consumer that stopped polling while it runs.
                await leave()
                return
            member = coordinator.member_id or given[0]
            if member:
                self.path.write_text(member + "\n", "utf-8")
            reset()

        coordinator.reset_generation = remember_and_reset
        coordinator._maybe_leave_group = keep_unless_idle
