"""Time travel: one person's journey on a simulated clock, firing due timers in order. Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from processor.events import Channel, Touchpoint
from processor.journey.definition import Journey
from processor.journey.engine import EventInput, Outcome, TimerFired, erase, step
from processor.journey.state import CustomerState, decode, due_timers, encode
from processor.messages import Action, Transition


@dataclass
class Simulation:
    """Feeds events and due timers of one customer through `step`, keeping every outcome.

    With `roundtrip`, the state is encoded and decoded between steps, as the streaming shell
    stores it; the outcomes must be the same either way.
    """

    journey: Journey
    customer_id: str
    clock: datetime
    roundtrip: bool = False
    state: CustomerState | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def _keep(self, out: Outcome) -> Outcome:
        self.outcomes.append(out)
        state = out.state
        self.state = decode(encode(state)) if self.roundtrip and state is not None else state
        return out

    def advance_to(self, until: datetime) -> list[Outcome]:
        """Fire every timer due by `until`, earliest first (later ones may be set meanwhile)."""
        fired: list[Outcome] = []
        while True:
            due = due_timers(self.state, until)
            if not due:
                break
            timer = due[0]
            # A timer armed already overdue (a backfilled trigger) fires at the current time.
            self.clock = max(self.clock, timer.due)
            fire = TimerFired.of(self.customer_id, timer)
            fired.append(self._keep(step(self.state, fire, self.clock, self.journey)))
        self.clock = max(self.clock, until)
        return fired

    def event(self, event: Touchpoint, channel: Channel, at: datetime) -> Outcome:
        """Process `event` at time `at` (after firing the timers due by then)."""
        self.advance_to(at)
        inp = EventInput.of(event, channel, self.customer_id)
        return self._keep(step(self.state, inp, self.clock, self.journey))

    def erase(self, request_id: str, at: datetime) -> Outcome:
        """The erase_customer command at time `at`."""
        self.advance_to(at)
        return self._keep(erase(self.state, self.customer_id, request_id, at, self.journey))

    @property
    def transitions(self) -> list[Transition]:
        """Every transition emitted so far, in order."""
        return [t for o in self.outcomes for t in o.transitions]

    @property
    def actions(self) -> list[Action]:
        """Every action emitted so far, in order."""
        return [a for o in self.outcomes for a in o.actions]

    @property
    def suppressed(self) -> Counter[tuple[str, str]]:
        """(rule, reason) counts of every suppression so far."""
        return Counter(s for o in self.outcomes for s in o.suppressed)

    @property
    def duplicates(self) -> int:
        """How many events were dropped as duplicates."""
        return sum(1 for o in self.outcomes if o.duplicate)

    @property
    def cross_channel_conversions(self) -> int:
        """How many outcomes were counted as cross-channel conversions."""
        return sum(1 for o in self.outcomes if o.cross_channel_conversion)
