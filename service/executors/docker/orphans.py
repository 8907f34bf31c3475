"""Containers no live gateway owns: a crashed gateway's runs and pooled sandboxes."""

from __future__ import annotations

import logging
import os
import socket
import time

import docker
import requests
from docker.errors import DockerException, NotFound

from service.errors import EngineUnavailable
from service.executors.base import CONTAINER_LABEL, GATEWAY_LABEL

log = logging.getLogger(__name__)


def remove_orphans(
    client: docker.APIClient,
    only: dict[str, str] | None = None,
    live_for_s: float = 900.0,
) -> list[str]:
    """Remove containers carrying our label that no run can still own; returns their names.

    Stopped ones always go, and so do those of a gateway process on this host that no longer
    exists (their ``GATEWAY_LABEL``). Another created or running one goes only when older than
    ``live_for_s`` (longer than any run may take), so a gateway that starts beside another one
    on the same engine, or a test suite beside another, does not kill runs in flight. A crashed
    gateway's runs stop by themselves: the harness ends when its stdin closes or its timeout
    hits. ``only`` narrows the selection to containers that also carry these labels.
    """
    removed: list[str] = []
    selectors = [CONTAINER_LABEL] + [f"{k}={v}" for k, v in (only or {}).items()]
    try:
        containers = client.containers(all=True, filters={"label": selectors})
    except (DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnavailable(f"cannot list containers: {exc}") from exc
    now = time.time()
    for c in containers:
        names: list[str] = c.get("Names") or [c["Id"][:12]]
        live = c.get("State") in ("created", "running", "paused", "restarting")
        owner = (c.get("Labels") or {}).get(GATEWAY_LABEL, "")
        if live and now - float(c.get("Created") or 0) < live_for_s and _alive(owner):
            continue
        try:
            client.remove_container(c["Id"], force=True, v=True)
        except NotFound:
            continue
        except (DockerException, requests.exceptions.RequestException) as exc:
            log.error("could not remove orphan %s: %s", names[0], exc)
            continue
        removed.append(names[0].lstrip("/"))
    return removed


def _alive(owner: str) -> bool:
    """May the gateway named ``owner`` ("host:pid") still run? False only when it is a
    process of this host that is gone; another host's (or an unlabelled) one may be alive."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
