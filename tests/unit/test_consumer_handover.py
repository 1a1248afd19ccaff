"""The worker's consumer hands a fetched message to the agents' buffers with a plain call when
nothing can make the hand-over wait, and through Faust's race with `suspend_flow` otherwise (a
rebalance must be able to abandon a hand-over that waits)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from processor.journey.definition import load_journey
from processor.metrics import Metrics
from processor.settings import DEFAULT_JOURNEY_FILE, Settings
from processor.stream.app import Runtime, create_app


def _runtime(tmp_path: Path) -> Runtime:
    settings = Settings(kafka_bootstrap="127.0.0.1:9", store="memory", data_dir=tmp_path)
    journey = load_journey(DEFAULT_JOURNEY_FILE)
    return create_app(settings, journey, Metrics.create(stages=tuple(journey.stages)))


def _close(rt: Runtime) -> None:
    """Close the event loop the consumer's thread made (it never started): left to the garbage
    collector it warns, as unclosed, inside whichever test runs then."""
    rt.app.consumer._thread.thread_loop.close()


async def _hand_over(rt: Runtime) -> tuple[bool | None, Any]:
    """Pass a hand-over through the consumer's `wait_first` as the drain loop does; returns
    whether it ran in the caller's own task (a plain call), None if it did not run."""
    consumer = rt.app.consumer
    caller = asyncio.current_task()
    ran: list[bool] = []

    async def handover() -> str:
        ran.append(asyncio.current_task() is caller)
        return "delivered"

    result = await consumer.wait_first(handover(), consumer.suspend_flow.wait())
    await asyncio.sleep(0)
    return (ran[0] if ran else None), result


def test_a_hand_over_that_waits_for_nothing_is_a_plain_call(tmp_path: Path) -> None:
    async def main() -> tuple[bool | None, Any]:
        rt = _runtime(tmp_path)
        rt.app.flow_control.resume()
        try:
            return await _hand_over(rt)
        finally:
            _close(rt)

    inline, result = asyncio.run(main())
    assert inline is True
    assert list(result.results) == ["delivered"]
    assert not result.stopped


def test_a_hand_over_during_a_rebalance_or_into_a_full_buffer_keeps_faust_s_race(
    tmp_path: Path,
) -> None:
    async def main() -> list[bool | None]:
        out = []
        rt = _runtime(tmp_path)
        consumer = rt.app.consumer
        # Flow control suspended (Faust starts that way, and suspends it in a rebalance).
        rt.app.flow_control.suspend()
        out.append((await _hand_over(rt))[0])
        rt.app.flow_control.resume()
        # The consumer's flow suspended.
        consumer.suspend_flow.set()
        out.append((await _hand_over(rt))[0])
        consumer.suspend_flow.clear()
        # An agent's buffer full.
        topic = rt.customer_events
        rt.app.topics.add(topic)
        queue = topic.queue
        while not queue.full():
            queue.put_nowait(None)
        out.append((await _hand_over(rt))[0])
        _close(rt)
        return out

    # Not in the caller's task: Faust's wait_first ran it as a task of its own, or not at all.
    assert [r is not True for r in asyncio.run(main())] == [True, True, True]
