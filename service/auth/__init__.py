"""Who may do what: roles, permissions and the caller's principal (no FastAPI here)."""
