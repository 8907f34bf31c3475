"""The docker engine: one fresh, locked-down runner container per sandbox."""
