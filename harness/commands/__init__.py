"""Thin typer commands, one module per command group; logic lives in the library modules."""
