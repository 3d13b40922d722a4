"""The ``disagg`` command line: one module per group of subcommands and what they share."""
