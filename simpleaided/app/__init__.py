"""The application: configuration, wiring, lifecycle and the ``simpleaided`` command."""
