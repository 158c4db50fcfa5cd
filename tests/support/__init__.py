"""What the tests share: the daemon run in-process or as a process, the RPC client, the CLI
sandbox, a new run, waiting for a condition, and stand-ins for the servers the daemon probes.

Test modules import from here, never from each other; ``tests/conftest.py`` only registers
the fixtures built on it."""
