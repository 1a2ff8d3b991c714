"""The `altinn-receiver` command line: `main.py` is the group, and each subcommand has a module of its own."""
