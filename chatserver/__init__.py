"""Asocial chat server: the real-time canvas chat over WebSocket.

Layers point inward only (enforced by import-linter, see pyproject.toml):
``cli → app → session → hub | presence | auth → broker → protocol | metrics → settings``.
"""
