"""The command line: thin Typer commands over the library (see ``nafcli.cli.main``)."""
