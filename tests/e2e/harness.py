"""Black-box harness for the `lodestar` binary: find it, run its CLI, start and stop servers.

Everything here talks to the real binary through its command line, its HTTP API and its
data folder. Nothing imports or imitates server code.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]

# How long a server may take to answer /healthz after it was started. A debug build that
# reopens a data folder after SIGKILL may need a few seconds on a busy 2-core machine.
START_TIMEOUT_S = 30.0
# Store settings that make sealing and compaction run all the time (crash and fault tests).
AGGRESSIVE_STORE = {
    "seal_rows": 200,
    "seal_interval_ms": 200,
    "max_seal_rows": 500,
    "compact_fanin": 2,
    "maintenance_interval_ms": 100,
}
# How long a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 15.0


class HarnessError(AssertionError):
    """A problem with the binary or the environment, reported as a test failure."""


def lodestar_bin() -> Path:
    """The binary under test.

    `LODESTAR_BIN` if set; otherwise the newer of `target/release/lodestar` and
    `target/debug/lodestar` (under `CARGO_TARGET_DIR` when that is set).
    """
    explicit = os.environ.get("LODESTAR_BIN")
    if explicit:
        path = Path(explicit)
        if not path.is_absolute():
            path = REPO_ROOT / path
        if not path.is_file():
            raise HarnessError(f"LODESTAR_BIN={explicit} does not exist; build it with `cargo build -p lodestar`")
        return path
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    found = [p for p in (target / "release" / "lodestar", target / "debug" / "lodestar") if p.is_file()]
    if not found:
        raise HarnessError(f"no lodestar binary under {target}; build it with `cargo build -p lodestar`")
    return max(found, key=lambda p: p.stat().st_mtime)


def child_env() -> dict[str, str]:
    """The environment for the binary: ours, minus every LODESTAR_* setting the binary reads,
    so that a developer's shell cannot change what a test starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LODESTAR_")}
    env.setdefault("RUST_BACKTRACE", "1")
    env.setdefault("NO_COLOR", "1")
    return env


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"no TOML form for {value!r}")


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Writes a lodestar TOML config with the given `[section] key = value` settings."""
    lines = []
    for section, settings in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in settings.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Workspace:
    """A temporary home for one data folder: its config file, logs and exports.

    Every command runs with this folder as its working directory and an explicit `--config`,
    so no `lodestar.toml` lying around the repository is picked up.
    """

    def __init__(self, root: Path, store: dict[str, Any] | None = None, server: dict[str, Any] | None = None):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = root / "data"
        sections: dict[str, dict[str, Any]] = {}
        if server:
            sections["server"] = dict(server)
        if store:
            sections["store"] = dict(store)
        self.config = write_config(root / "lodestar.toml", sections)
        self.binary = lodestar_bin()

    def base_args(self) -> list[str]:
        return [str(self.binary), "--config", str(self.config), "--data-dir", str(self.data_dir)]

    def cli(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        """Runs one CLI command; with `check`, a non-zero exit fails the test with its output."""
        cmd = self.base_args() + list(args)
        proc = subprocess.run(cmd, cwd=self.root, env=child_env(), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise HarnessError(
                f"`lodestar {' '.join(args)}` exited {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
            )
        return proc

    def create_project(self, name: str) -> str:
        """Creates a project; returns its write key (the CLI prints it alone on stdout)."""
        out = self.cli("projects", "create", name).stdout
        lines = [line for line in out.splitlines() if line.strip()]
        assert len(lines) == 1, f"`projects create` should print the write key alone on stdout, printed {out!r}"
        return lines[0].strip()

    def export_events(self, project: str) -> list[dict[str, Any]]:
        """Exports every event of `project` as JSONL (the server must be stopped) and parses it."""
        out = self.root / f"export-{time.monotonic_ns()}.jsonl"
        self.cli("export", "events", "--project", project, "--format", "jsonl", "--out", str(out), timeout=300)
        events = []
        with out.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        events.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise AssertionError(f"export line {number} is not JSON ({e}): {line[:300]!r}") from None
        return events


class Server:
    """One `lodestar serve` process on a free loopback port, restartable on the same folder."""

    def __init__(self, ws: Workspace, project: str, write_key: str, wrapper: Sequence[str] = ()):
        self.ws = ws
        self.project = project
        self.write_key = write_key
        self.wrapper = list(wrapper)
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = ws.root / "server.log"
        self.starts = 0
        # Set by stop(): whether the last stop needed SIGKILL, and the exit status.
        self.forced_stop = False
        self.last_exit: int | None = None
        self.session = requests.Session()

    # --- process control -------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> float:
        """Starts the server and waits for /healthz; returns the seconds that took."""
        assert not self.running(), "server already running"
        last_error = ""
        for _attempt in range(3):
            self.port = free_port()
            self.starts += 1
            with self.log_path.open("a") as log:
                log.write(f"\n===== start #{self.starts} on port {self.port} =====\n")
                log.flush()
                cmd = self.wrapper + self.ws.base_args() + ["serve", "--listen", f"127.0.0.1:{self.port}"]
                started = time.monotonic()
                self.proc = subprocess.Popen(
                    cmd, cwd=self.ws.root, env=child_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            ok, last_error = self._wait_healthy(timeout)
            if ok:
                return time.monotonic() - started
            if self.running():
                break
            # Exited: another process may have taken the port between free_port() and bind.
            if "in use" not in self.log_tail(20).lower():
                break
        tail = self.log_tail()
        self.kill()
        raise AssertionError(f"server did not become healthy ({last_error}); log:\n{tail}")

    def _wait_healthy(self, timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        error = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"exited with status {self.proc.returncode}"
            try:
                r = requests.get(self.url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return True, ""
                error = f"/healthz answered {r.status_code}: {r.text[:200]}"
            except requests.RequestException as e:
                error = f"/healthz: {type(e).__name__}"
            time.sleep(0.03)
        return False, f"not healthy after {timeout:.0f} s: {error}"

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.session.close()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        self.forced_stop = False
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.forced_stop = True
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.last_exit = self.proc.returncode
        self.session.close()
        return self.last_exit

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- HTTP --------------------------------------------------------------------------
    def post(
        self,
        call: str,
        body: Any,
        *,
        key: str | None = "default",
        gzip: bool = False,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> requests.Response:
        """POSTs to /v1/{call}. `body` is JSON-encoded unless it is bytes. `key="default"`
        sends the project's write key as the HTTP Basic user name; None sends no key."""
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        h = {"Content-Type": "application/json"}
        if gzip:
            data = gzip_module.compress(data)
            h["Content-Encoding"] = "gzip"
        h.update(headers or {})
        auth = None
        if key is not None:
            auth = (self.write_key if key == "default" else key, "")
        return self.session.post(f"{self.url}/v1/{call}", data=data, headers=h, auth=auth, timeout=timeout)

    def warnings(self, limit: int = 1000) -> list[dict[str, Any]]:
        r = self.session.get(f"{self.url}/api/projects/{self.project}/warnings", params={"limit": limit}, timeout=10)
        assert r.status_code == 200, f"warnings API answered {r.status_code}: {r.text[:300]}"
        return r.json()["warnings"]

    def metrics(self) -> dict[str, float]:
        """The /metrics samples by their full name (labels included)."""
        r = self.session.get(f"{self.url}/metrics", timeout=10)
        assert r.status_code == 200, f"/metrics answered {r.status_code}"
        return parse_prometheus(r.text)

    def rss_kib(self) -> int:
        """Resident memory of the server process (KiB)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")


def parse_prometheus(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        samples[name.strip()] = float(value)
    return samples


def message_id_counts(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        mid = e.get("messageId")
        counts[mid] = counts.get(mid, 0) + 1
    return counts


def assert_exactly_once(expected_ids: Iterable[str], events: list[dict[str, Any]], what: str = "acknowledged") -> None:
    """Every id in `expected_ids` is in `events` exactly once, and no id is there twice."""
    counts = message_id_counts(events)
    doubled = {mid: n for mid, n in counts.items() if n > 1}
    expected = set(expected_ids)
    missing = sorted(expected - counts.keys())
    assert not doubled, f"{len(doubled)} messageIds exported more than once, e.g. {sorted(doubled.items())[:5]}"
    assert not missing, f"{len(missing)} of {len(expected)} {what} messageIds missing from the export, e.g. {missing[:5]}"
