"""Build machine-readable flag schemas from the engines' own argument parsers."""
