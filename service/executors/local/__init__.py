"""The local engine ("subprocess"): the harness in a bubblewrap sandbox on this host."""
