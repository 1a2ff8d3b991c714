"""Handler plugin API and built-in handlers."""
