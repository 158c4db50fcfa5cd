"""The benchmark suite (DESIGN.md §8): run it with ``python -m tests.bench [--quick]``.

Nothing here is a pytest test: the modules are named ``bench_*.py`` so pytest never collects
them, and the figures are checked against the targets in a printed table, not by assertions.
"""
