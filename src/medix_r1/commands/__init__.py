"""CLI subcommands. Each module exposes ``register(subparsers)``; it parses arguments and calls the library.

Keep the logic out of here: a command wires library functions together so tests can call them directly.
"""

# Order is the order shown in `medix-r1 --help`.
COMMAND_MODULES = ("data", "score", "train", "eval", "demo", "app", "review")
