"""Timers: the clock that fires them, the index of due times, the store scan that rebuilds it."""
