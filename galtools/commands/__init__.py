"""Built-in galprep commands, one module each, registered as ``galtools.commands`` entries."""
