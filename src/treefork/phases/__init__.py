"""Phases of a domain: setup, map, reduce (with tests) and integration (imperative shell).

Each phase gathers its inputs, asks the core what to do, and performs the I/O.
"""
