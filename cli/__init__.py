"""The ``infersave`` command line: presentation only."""
