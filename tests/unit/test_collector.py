"""The worker's garbage collector settings (processor/collector.py)."""

import gc
import weakref

from processor import collector


def test_a_working_process_scans_young_objects_rarely_and_never_its_start_up_heap() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    start_up = [object() for _ in range(10)]  # exists before: exempt from the scans
    with collector.working():
        assert gc.get_threshold() == (collector.YOUNG_SCAN_AFTER, *before[1:])
        assert gc.get_freeze_count() >= frozen_before + len(start_up)
        assert before[0] < collector.YOUNG_SCAN_AFTER
    # The benchmark's process goes on as it was.
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_cycle_made_while_working_goes_by_itself_within_a_young_scan() -> None:
    class Node:
        pass

    with collector.working():
        node = Node()
        node.self = node  # type: ignore[attr-defined]
        gone = weakref.ref(node)
        del node
        assert gone() is not None  # a cycle: reference counting alone never frees it
        kept = [[] for _ in range(collector.YOUNG_SCAN_AFTER + 1)]  # allocations, no collect()
        assert gone() is None
        del kept
