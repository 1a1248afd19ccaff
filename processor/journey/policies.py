"""The policies every action passes: consent, staleness, quiet hours and frequency caps."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from processor.journey.definition import Journey, Step
from processor.journey.state import CustomerState

CONSENT, CAP, QUIET_HOURS, STALE = "consent", "cap", "quiet_hours", "stale"
REASONS = (CONSENT, CAP, QUIET_HOURS, STALE)


@cache
def zone(name: str) -> ZoneInfo:
    """A cached ZoneInfo (the names were validated at the edge and in the journey file)."""
    return ZoneInfo(name)


def local_zone(state: CustomerState, journey: Journey) -> ZoneInfo:
    """The person's time zone: the latest one they were seen in, else the journey default."""
    return zone(state.timezone or journey.policies.timezone)


def is_transactional(step: Step, journey: Journey) -> bool:
    """Transactional templates need no opt-in, are not capped and ignore quiet hours."""
    return journey.sending[step.name].transactional


def has_consent(state: CustomerState, channel: str, journey: Journey) -> bool:
    """Effective marketing consent on `channel` (True where the journey needs none)."""
    policy = journey.policies.consent
    if channel == "email" and state.email_blocked:
        return False
    if channel not in policy.channels:
        return True
    explicit = state.consent.get(channel)
    if explicit is not None:
        return explicit
    # ePrivacy art. 13(2) "soft opt-in": an existing customer, never opted out, may be allowed.
    return policy.existing_customers_soft_opt_in and state.purchases > 0


def consent_allows(state: CustomerState, step: Step, journey: Journey) -> bool:
    """May this step's action go out on its channel, as far as consent is concerned?

    Decisions where the journey definition is silent:
    - Consent is needed only on the journey's consent channels (email, sms, push); `ads` and `crm`
      actions (retargeting, coupons credited to the account, support tasks, tags) need none and
      are not capped. An unsubscribe can be undone by a later explicit opt-in; a hard bounce or a
      complaint blocks email for good, transactional mail included.
    - Caps count marketing messages at their `send_after` (after quiet hours moved them), over
      any window of the rolling length, and per calendar day in the person's time zone as it is
      now (the latest `context.timezone` seen).
    - Quiet hours move `send_after` to the next local end of quiet hours; zoneinfo computes the
      instant, so the UTC time of "08:00" follows the daylight-saving change of that very night.
    - A suppressed action is counted once, with the first policy that refused it, in the order
      consent, stale, cap. Quiet hours only move an action: it is emitted and also counted.
    """
    channel = step.channel or ""
    if is_transactional(step, journey):
        return not (channel == "email" and state.email_blocked)
    return has_consent(state, channel, journey)


def after_quiet_hours(at: datetime, state: CustomerState, step: Step, journey: Journey) -> datetime:
    """`at`, or the next local end of quiet hours when `at` falls inside them."""
    quiet = journey.policies.quiet_hours
    if quiet is None or not journey.sending[step.name].quiet:
        return at
    tz = local_zone(state, journey)
    local = at.astimezone(tz)
    now_t = local.time().replace(tzinfo=None)
    if not _inside(now_t, quiet.start, quiet.end):
        return at
    day = local.date()
    if now_t >= quiet.end and quiet.start > quiet.end:
        # Evening part of a window that wraps midnight: it ends tomorrow morning.
        day += timedelta(days=1)
    # Built as local wall time, then converted: zoneinfo picks that day's offset (CET or CEST).
    return datetime.combine(day, quiet.end, tzinfo=tz).astimezone(UTC)


def _inside(t: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= t < end
    return t >= start or t < end


def is_capped(step: Step, journey: Journey) -> bool:
    """Does this step's action count towards (and is it limited by) the frequency caps?"""
    return journey.sending[step.name].capped


def within_caps(state: CustomerState, send_at: datetime, journey: Journey) -> bool:
    """Would one more capped message at `send_at` keep every window within its cap?

    `state.sent` is kept in order (record_send, merge), so each window is two bisections."""
    caps = journey.policies.frequency_caps
    if caps is None:
        return True
    sent, t = state.sent, send_at.timestamp()
    span = caps.rolling.within.total_seconds()
    near = sent[bisect_right(sent, t - span) : bisect_left(sent, t + span)]
    # Every window of length `span` that holds t starts in (t - span, t]; the fullest one
    # starts at t itself or at one of the earlier sends. The new message is in each of them.
    for start in (*near[: bisect_right(near, t)], t):
        if bisect_left(near, start + span) - bisect_left(near, start) + 1 > caps.rolling.max:
            return False
    first, after = local_day(send_at, local_zone(state, journey))
    return bisect_left(sent, after) - bisect_left(sent, first) + 1 <= caps.per_local_day


def local_day(at: datetime, tz: ZoneInfo) -> tuple[float, float]:
    """The calendar day in `tz` that holds `at`, as epoch seconds: from its first instant to the
    next day's first (zoneinfo places a midnight that daylight saving skips or repeats)."""
    return _day_bounds(at.astimezone(tz).date(), tz)


@lru_cache(maxsize=4096)
def _day_bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    """`local_day` of a date, remembered: most capped sends fall on a few recent days, and
    placing two local midnights costs several times the look-up."""
    first = datetime.combine(day, time(), tzinfo=tz).timestamp()
    return first, datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).timestamp()


def record_send(state: CustomerState, send_at: datetime, journey: Journey) -> None:
    """Remember a capped message; forget those no window can reach any more (bounded)."""
    caps = journey.policies.frequency_caps
    if caps is None:
        return
    t = send_at.timestamp()
    # Two days of margin keep every send that can still share a local calendar day.
    keep_s = max(caps.rolling.within.total_seconds(), 2 * 86400.0)
    # `state.sent` is in order: the forgotten ones are a prefix, and `t` goes in by bisection.
    # A new list, not changed in place: the state a step was given shares it (`copy`).
    sent = state.sent[bisect_right(state.sent, t - keep_s) :]
    insort(sent, t)
    state.sent = sent[-64:]
