"""python-coder gateway: API, pipeline, LLM, executors, MCP."""

__version__ = "0.1.0"
