"""The MCP adapter: the tool catalogue over the official ``mcp`` SDK.

``server.py`` translates MCP tool listings and calls into catalogue calls; ``http.py`` mounts
it at ``/mcp`` (streamable HTTP) in the gateway; ``stdio.py`` serves it over stdin/stdout
(``python-coder mcp``) against an in-process app state.
"""
