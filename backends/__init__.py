"""Backends: llvm, torch and triton. Each compiles a Graph into a runnable module."""
