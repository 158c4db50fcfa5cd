"""Pure, synchronous core: models, the state machine, path rules and the status computation.

Nothing here performs I/O or needs an event loop.
"""
