"""The command line's parts: the options several commands share (`options`) and each command group that has its own
module (`generate`). `synthgap.cli` assembles them into the `synthgap` command. Like `synthgap.cli`, these modules
import typer and nothing heavy: a command imports the stage it runs when it runs."""
