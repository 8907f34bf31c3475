"""HTTP edge: thin routes, dependencies and the one error-mapping table."""
