"""One module per subcommand of `altinn-receiver`."""
