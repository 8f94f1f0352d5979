"""A real Label Studio server for tests: SQLite in a temp folder, loopback port, its own process group.

The server runs from `.venv-labelstudio` (scripts/setup_labelstudio.sh), or from the interpreter named by
PREFMIX_LABEL_STUDIO (a `label-studio` executable). Start-up is non-interactive: the admin user and its
API token come from `label-studio start --username/--password/--user-token`, and legacy tokens are
enabled for the organization it creates (`--enable-legacy-api-token`, LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN).

Django's migrations on a fresh SQLite file are most of a cold start (~90 s on 2 loaded cores, ~20 s
without), so the first start migrates a template database once per Label Studio version
(`.prefmix/labelstudio/template-<version>.sqlite3`, made by `label-studio init` in a temp folder); each
server copies it into its own temp folder. Telemetry is off: no Sentry DSN, no PyPI version check, no
analytics. Annotator accounts are made the way a person makes one: the organization's invite link
(GET /api/invite), the sign-up form (with its CSRF token), then GET /api/current-user/token in that
session.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / ".venv-labelstudio" / "bin" / "label-studio"
ADMIN_EMAIL = "admin@prefmix.test"
ADMIN_PASSWORD = "prefmix-admin-pass"
ADMIN_TOKEN = "prefmix0test0admin0token0000000000000000"  # legacy token (40 chars, like Label Studio's own)


def label_studio_bin() -> Path:
    return Path(os.environ.get("PREFMIX_LABEL_STUDIO", DEFAULT_BIN))


def _version(binary: Path) -> str:
    python = binary.parent / "python"
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('label-studio'))"],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.pop("USERNAME", None)  # Label Studio reads USERNAME/PASSWORD as the default user's
    env.pop("PASSWORD", None)
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        DJANGO_DB="sqlite",
        DATABASE_NAME=str(data_dir / "label_studio.sqlite3"),
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def template_database(binary: Path, cache: Path | None = None) -> Path:
    """A migrated, empty Label Studio SQLite database for this version; built once (under a lock-free rename)."""
    cache = cache or REPO / ".prefmix" / "labelstudio"
    target = cache / f"template-{_version(binary)}.sqlite3"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ls-template-") as tmp:
        data = Path(tmp)
        log = data / "init.log"
        with open(log, "wb") as out:
            proc = subprocess.run([str(binary), "init", "--quiet", "--no-browser"], env=server_env(data), cwd=tmp,
                                  stdout=out, stderr=subprocess.STDOUT, timeout=900, start_new_session=True)
        if proc.returncode != 0 or not (data / "label_studio.sqlite3").exists():
            raise RuntimeError(f"label-studio init failed ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        staged = cache / f".{target.name}.{os.getpid()}.tmp"
        shutil.copyfile(data / "label_studio.sqlite3", staged)
        os.replace(staged, target)
    return target


@dataclass
class Annotator:
    """A Label Studio user made through the sign-up form; `token` is its own legacy API token."""

    email: str
    token: str
    user_id: int

    @property
    def annotator_id(self) -> str:  # as prefmix.routing.label_studio names it
        return f"ls-user-{self.user_id}"


@dataclass
class LabelStudioServer:
    """`with LabelStudioServer(folder) as server:` starts, waits until healthy, and stops the process group."""

    data_dir: Path
    port: int = 0
    binary: Path = field(default_factory=label_studio_bin)
    startup_timeout: float = 600.0
    use_template: bool = True
    token: str = ADMIN_TOKEN  # the admin's API token (set before start to use another)
    proc: subprocess.Popen[bytes] | None = None
    startup_s: float | None = None  # process start -> healthy API with the admin token
    template_s: float | None = None  # time spent building the template database (0 when cached)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def __enter__(self) -> LabelStudioServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if not self.binary.exists():
            raise FileNotFoundError(f"{self.binary}: no Label Studio here; run scripts/setup_labelstudio.sh")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.use_template:
            began = time.monotonic()
            template = template_database(self.binary)
            self.template_s = time.monotonic() - began
            shutil.copyfile(template, self.data_dir / "label_studio.sqlite3")
        self.port = self.port or free_port()
        command = [
            str(self.binary), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port),
            "--username", ADMIN_EMAIL, "--password", ADMIN_PASSWORD, "--user-token", self.token,
            "--enable-legacy-api-token",
        ]
        began = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, env=server_env(self.data_dir), cwd=self.data_dir, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_healthy(began)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began

    def _wait_healthy(self, began: float) -> None:
        headers = {"Authorization": f"Token {self.token}"}
        with httpx.Client(base_url=self.url, timeout=5.0, trust_env=False) as http:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"label-studio exited with {self.proc.returncode}: {self.tail()}")
                if time.monotonic() - began > self.startup_timeout:
                    raise TimeoutError(f"label-studio not healthy after {self.startup_timeout:.0f} s: {self.tail()}")
                try:
                    if http.get("/health").status_code == 200 and http.get("/api/current-user/whoami", headers=headers).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # -- users ------------------------------------------------------------------------------------

    def create_annotator(self, email: str, password: str = "prefmix-annotator-pass") -> Annotator:
        """Sign up through the organization's invite link, as a person would, and fetch the user's own token."""
        admin = {"Authorization": f"Token {self.token}"}
        with httpx.Client(base_url=self.url, timeout=30.0, trust_env=False) as http:
            invite = http.get("/api/invite", headers=admin)
            invite.raise_for_status()
            link = invite.json()["invite_url"]
        with httpx.Client(base_url=self.url, timeout=30.0, trust_env=False, follow_redirects=False) as browser:
            page = browser.get(link)
            page.raise_for_status()
            found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            csrf = found.group(1) if found else browser.cookies.get("csrftoken", "")
            signup = browser.post(link, data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
                                  headers={"Referer": self.url + link})
            if signup.status_code != 302:
                raise RuntimeError(f"sign-up of {email} failed: HTTP {signup.status_code} {signup.text[:300]}")
            token = browser.get("/api/current-user/token")
            token.raise_for_status()
            key = token.json()["token"]
        with httpx.Client(base_url=self.url, timeout=30.0, trust_env=False) as http:
            me = http.get("/api/current-user/whoami", headers={"Authorization": f"Token {key}"})
            me.raise_for_status()
            assert me.json()["email"] == email
            return Annotator(email=email, token=key, user_id=int(me.json()["id"]))


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.routing.labelstudio_server template` builds the template database;
    `... serve [DIR]` runs a server until Ctrl-C and prints the env vars that make the tests use it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.routing.labelstudio_server")
    parser.add_argument("command", choices=["template", "serve"])
    parser.add_argument("data_dir", nargs="?", default=None)
    args = parser.parse_args(argv)
    binary = label_studio_bin()
    if args.command == "template":
        began = time.monotonic()
        path = template_database(binary)
        print(f"{path} ({time.monotonic() - began:.1f} s)")
        return 0
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="prefmix-label-studio-"))
    with LabelStudioServer(data_dir=data_dir) as server:
        print(f"started in {server.startup_s:.1f} s; data in {data_dir}")
        print(f"export PREFMIX_TEST_LABEL_STUDIO_URL={server.url} PREFMIX_TEST_LABEL_STUDIO_TOKEN={server.token}", flush=True)
        try:
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
