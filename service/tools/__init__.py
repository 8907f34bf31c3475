"""Data tools for agents: read-only SQL and file storage (local roots and S3)."""
