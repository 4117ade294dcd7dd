"""Fail fast, before anything is written: the Ray cluster and the tracking server a study will use must be
reachable (seconds, not minutes), and a cluster must not record into a file on the driver's machine."""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.error
import urllib.request
from urllib.parse import urlparse

from sfli_core.config import ConfigError

TIMEOUT_S = 5.0
RAY_CLIENT_PORT, GCS_PORT = 10001, 6379

SERVER_HINT = ("start one where every node reaches it, e.g. mlflow server --backend-store-uri "
               "sqlite:///PATH/mlflow.db --artifacts-destination PATH/artifacts --host 0.0.0.0 --port 5000 "
               "(PostgreSQL behind it for many trials), and pass --tracking-uri http://HOST:5000")


def _host_port(address: str) -> tuple[str, int]:
    """'ray://head:10001' → ('head', 10001); 'head:6379' → ('head', 6379); a missing port gets Ray's default."""
    parsed = urlparse(address if "://" in address else f"gcs://{address}")
    default = RAY_CLIENT_PORT if parsed.scheme == "ray" else GCS_PORT
    if not parsed.hostname:
        raise ConfigError(f"--address {address!r}: expected host:port, ray://host:port or auto")
    return parsed.hostname, parsed.port or default


def is_local_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_cluster(address: str | None, uri: str) -> None:
    """A cluster address needs a tracking server (not a file store) unless every node is this machine, and it
    must answer a TCP connection within seconds."""
    if not address:
        return
    host = None if address == "auto" else _host_port(address)[0]
    if not uri.startswith(("http://", "https://")) and not (host and is_local_host(host)):
        raise ConfigError(f"a Ray cluster ({address}) needs a tracking server that every node reaches; the store "
                          f"{uri} is a file on this machine, so each worker would record into its own copy: "
                          f"{SERVER_HINT}")
    if host is None:
        return  # 'auto': Ray finds the cluster this machine belongs to
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            pass
    except OSError as err:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({host}:{port}: {err}); check the address "
                          "(host:port of the head's GCS, or ray://host:10001 for Ray Client)") from None
    if os.environ.get("RAY_USE_TLS", "0").lower() not in ("1", "true") and not _speaks_grpc(host, port):
        raise ConfigError(f"{address}: something listens at {host}:{port} but it does not answer as a Ray cluster "
                          f"within {TIMEOUT_S:.0f} s (Ray's GCS and Ray Client speak gRPC); check the address "
                          "(host:port of the head's GCS, or ray://host:10001 for Ray Client)")


# HTTP/2's client connection preface and an empty SETTINGS frame (RFC 9113 §3.4, §6.5)
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
SETTINGS = 4


def _speaks_grpc(host: str, port: int) -> bool:
    """Whether the server at host:port answers the HTTP/2 connection preface, as gRPC servers do (a Ray
    head's GCS and its Ray Client server), with its own SETTINGS frame in time: a web server, a database or a
    silent listener does not, and Ray would wait for it for ever."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as conn:
            conn.sendall(HTTP2_PREFACE)
            header = b""
            while len(header) < 9:
                chunk = conn.recv(9 - len(header))
                if not chunk:
                    return False
                header += chunk
    except OSError:  # a timeout included
        return False
    return header[3] == SETTINGS


def check_local_resources(study, address: str | None, num_cpus: int | None) -> None:
    """A trial that asks a local Ray instance for more CPUs or GPUs than it has would wait for ever: refused.
    (A cluster may still add nodes: its trials wait for them.)"""
    from .ray_session import cluster_address, machine_cpus

    if cluster_address(address):
        return
    cpus = num_cpus or machine_cpus()
    need = study.resources
    if need.cpus > cpus:
        raise ConfigError(f"resources.cpus: {need.cpus:g} per trial, but the local Ray instance has {cpus} CPU"
                          f"{'s' if cpus > 1 else ''}" + (f" (--num-cpus {num_cpus})" if num_cpus else "")
                          + ": no trial could start; lower resources.cpus or give more CPUs")
    if need.gpus > 0:
        import torch

        if need.gpus > torch.cuda.device_count():
            raise ConfigError(f"resources.gpus: {need.gpus:g} per trial, but this machine has "
                              f"{torch.cuda.device_count()} GPUs: no trial could start; set resources.gpus: 0, or "
                              "run on a cluster with GPUs (--address)")


def check_tracking(uri: str) -> None:
    """A tracking server must answer its health check within seconds."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=TIMEOUT_S) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as err:
        problem = f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        problem = str(getattr(err, "reason", err))
    raise ConfigError(f"cannot reach the tracking server at {uri} ({problem}); is `mlflow server` running there?")
