"""Built-in galprep commands, one module each, registered as ``galtools.commands`` entries.

The contract of the group (checked when an entry loads, see :data:`galtools.registry.CHECKS`):
an entry is a :class:`click.Command` (a group is one too); ``galprep NAME`` runs it under its
entry-point name.
"""


def check(command, name=None):
    """Raise TypeError unless ``command`` is a click command."""
    import click

    if not isinstance(command, click.Command):
        raise TypeError(f"a {type(command).__name__}, not a click command")
