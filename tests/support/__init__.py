"""Helpers the tests share: running the CLIs, building inputs, reading outputs back."""
