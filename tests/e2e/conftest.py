"""Fixtures for the end-to-end tests: a real `lodestar` server per test, on a free loopback
port, with its own data folder and a new project.

When a test fails, the tail of every server log it used is attached to the report.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pytest

from harness import Server, Workspace

PROJECT = "e2e"

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in getattr(item, "lodestar_servers", []):
            report.sections.append((f"lodestar server log ({server.log_path})", server.log_tail(60)))


ServerFactory = Callable[..., Server]


@pytest.fixture
def make_server(request, tmp_path) -> ServerFactory:
    """Returns `make(store=…, server=…, wrapper=…, start=True)`: a new workspace with a new
    project and a server on it. Every server is stopped (SIGTERM, then SIGKILL) at the end."""
    servers: list[Server] = []
    request.node.lodestar_servers = servers

    def make(
        store: dict[str, Any] | None = None,
        server: dict[str, Any] | None = None,
        wrapper: Sequence[str] = (),
        start: bool = True,
    ) -> Server:
        ws = Workspace(tmp_path / f"ws{len(servers)}", store=store, server=server)
        key = ws.create_project(PROJECT)
        srv = Server(ws, PROJECT, key, wrapper=wrapper)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in servers:
        srv.stop(timeout=10)


@pytest.fixture
def lodestar(make_server) -> Server:
    """A running server with default settings and a fresh project."""
    return make_server()
