"""Example architectures built with archir: `examples/<name>.py:<function>` returns a model or graph."""
