"""Kernel-facing sandbox building blocks shared by the gateway's engines and the intake workers.

Pure and dependency-free (no FastAPI, nothing from ``service/``): ``syscalls`` (the allow-list
and its x86_64 numbers), ``seccomp`` (the BPF filter, built in Python; bwrap loads it, or a
process installs it on itself), ``bwrap`` (bubblewrap argument pieces, the probe, setpriv).
"""
