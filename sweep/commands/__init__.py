"""One module per `fusion-sweep` subcommand: each defines add_arguments(parser) and run(args) -> int."""
