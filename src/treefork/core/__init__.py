"""Functional core: pure functions over data.

Nothing here touches git, processes, files or the clock (ruff's TID251 enforces it), so every
decision the engine makes can be tested with plain values.
"""
