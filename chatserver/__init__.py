"""Asocial chat server: the real-time canvas chat over WebSocket.

Its modules form layers that import only inward; the order, and which modules may touch
uvicorn and websockets, are the import-linter contracts in ``pyproject.toml``
(``[tool.importlinter]``, checked by ``make layers``). Each module's docstring says what
it may use.
"""
