"""One module per LSP request or notification; `registry` wires them to the server.

Handlers stay thin: they read the message, ask the session's parts (which own the
state and the threads) and shape the answer."""
