"""Data collection, system verification and latency analysis (``collect``, ``verify``, ``analyze``).

``procfs`` reads /proc and /sys, ``checks`` turns that into pre-flight verdicts,
``monitors`` samples the machine each second into CSV, ``runner`` drives a collection
run against the mock exchange, ``analysis`` and ``plots`` turn a run directory into
a report. Nothing here is on the trading hot path.
"""
