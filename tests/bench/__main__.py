"""``python -m tests.bench [--quick] [--sizes 1000,10000,100000]``: run the benchmarks;
``python -m tests.bench grid [--quick]``: the database grid's (``grid.py``);
``python -m tests.bench terminals [--quick]``: the terminals' (``terminals.py``).

Kept import-free at module level: the worker processes (started with ``spawn``) import this
module again as ``__mp_main__`` and must not pay for, or run, anything of the orchestrator.
"""

if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["grid"]:
        from tests.bench.grid import main as grid_main

        sys.exit(grid_main(sys.argv[2:]))
    if sys.argv[1:2] == ["terminals"]:
        from tests.bench.terminals import main as terminals_main

        sys.exit(terminals_main(sys.argv[2:]))

    from tests.bench.suite import main

    sys.exit(main())
