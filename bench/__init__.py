"""Benchmarks: time to containment, sweep throughput and Prefect's overhead, each printed next to
a bare-script baseline. ``python -m bench.run`` (``make bench``) runs everything on one machine
against the emulator; see docs/benchmarks.md for the figures and how to read them.
"""
