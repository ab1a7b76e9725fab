"""The model gateway: every agent reaches a model through it."""
