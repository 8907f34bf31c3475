"""The agent tool catalogue: one list of tools served over MCP, ``/v1/tools`` and the client.

Adapters (``service/mcp``, ``service/api/routes/tools.py``) translate their protocol into
``CATALOGUE.call(name, arguments, ctx)`` and the ``ToolResult`` back; they never run a tool
themselves.
"""

from service.agent_tools.catalogue import CATALOGUE, Catalogue, Tool, ToolContext
from service.models import ToolImage, ToolResult

__all__ = ["CATALOGUE", "Catalogue", "Tool", "ToolContext", "ToolImage", "ToolResult"]
