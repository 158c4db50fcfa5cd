"""The benchmark suite (README: Benchmarks): run it with ``python -m tests.bench [--quick]``.

Nothing here is a pytest test (no module is named ``test_*.py``, so pytest never collects
one), and the figures are checked against the targets in a printed table, not by assertions.
``suite.py`` runs the scenarios (``sizes.py``, ``abuse.py``) on what ``scenario.py`` measures
with; ``client.py``, ``procs.py``, ``tree.py`` and ``floor.py`` are the clients, the servers'
processes, the run trees on disk and the floor server; ``report.py`` makes the table.
``python -m tests.bench grid`` runs the database grid's (``grid.py``: its tables in
``grid_data.py``, the floor, OFFSET, Datasette and the CSV tools it is compared with in
``grid_rivals.py``); ``python -m tests.bench.console`` the web console's (``console.py``).
"""
