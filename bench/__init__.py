"""Benchmarks of issue 8: ``python -m bench`` (``make bench``) runs them and prints figures next to targets.

Speed is never asserted in the unit tests: the figures depend on the machine and its load, so they are printed,
with the run conditions, and written up in ``docs/benchmarks.md``.
"""
