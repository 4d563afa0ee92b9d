"""Benchmarks and reliability checks: each is a script, ``python benchmarks/<name>.py``.

A package only so the scripts and their helpers (``benchmarks.machine``,
``benchmarks.index_bench``) import one way, run as scripts or type-checked from the repository
root. docs/benchmarks.md says what each measures.
"""
