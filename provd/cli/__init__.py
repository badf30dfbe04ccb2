"""Command-line entry points: ``provd run|sim|demo|phones|status|render``."""
