"""Fixtures for the browser suite: a throw-away JupyterLab and a headless Chromium.

Everything here talks to 127.0.0.1 only:
- JupyterLab is started from the kit's own environment (the `jupyter` next to
  `sys.executable`), bound to 127.0.0.1 on a free port, with a random token, a
  temporary root holding copies of the notebooks, and fresh config, data,
  runtime, settings and workspace directories, so no state leaks in or out.
  News, update checks and the PyPI extension manager are switched off.
- Chromium is Debian's `/usr/bin/chromium` (override with COLLAB_CHROMIUM),
  driven by the Python Playwright package; nothing downloads a browser.
  Every request that is not for the test server is aborted and recorded, and
  each test asserts that the list is empty.
- Whatever is started is stopped in finalizers, also when a test fails: the
  server (its process group) and any kernel it launched (found by the
  connection file in our private runtime directory).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
NOTEBOOKS = REPO_ROOT / "notebooks"
OUTPUT_DIR = REPO_ROOT / "test-output" / "browser"
KERNEL_NAME = "collab-kit"
CHROMIUM = Path(os.environ.get("COLLAB_CHROMIUM", "/usr/bin/chromium"))
SERVER_START_TIMEOUT_S = 180

# The fixture notebook is driven by the browser tests; nbval (`make test`
# passes --nbval-lax) must not collect it as a notebook test of its own.
collect_ignore_glob = ["fixtures/*"]

CHROMIUM_ARGS = [
    # Playwright adds `--headless` itself (headless=True); with Chromium >= 132
    # that is the new headless mode, the only one left in the full browser.
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--no-proxy-server",
    "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    # Belt and braces for the closed network: no host name resolves except
    # the loopback address (IP literals are handled by the page route).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in headless Chromium")


# --------------------------------------------------------------------------- skips

def _require_chromium() -> Path:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}: install it with `apt-get install chromium`")
    return CHROMIUM


def _require_playwright():
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need the Python package playwright: `make setup` installs it "
                    "(Chromium itself comes from `apt-get install chromium`)")
    return sync_playwright


def jupyter_executable() -> Path:
    """`jupyter` of the environment running the tests (the kit's .venv under `make`)."""
    candidate = Path(sys.executable).parent / "jupyter"
    if not candidate.exists():
        candidate = Path(sys.prefix) / "bin" / "jupyter"
    return candidate


# --------------------------------------------------------------------------- server

def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class LabServer:
    base_url: str
    token: str
    root_dir: Path
    runtime_dir: Path
    log_path: Path
    process: subprocess.Popen
    notebooks: dict = field(default_factory=dict)  # name -> path relative to root_dir

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def api(self, path: str, method: str = "GET", timeout: float = 10):
        request = urllib.request.Request(
            self.url(path), method=method, headers={"Authorization": f"token {self.token}"},
            data=b"" if method in ("POST", "PUT", "PATCH") else None)
        with _NO_PROXY_OPENER.open(request, timeout=timeout) as response:
            body = response.read()
            return json.loads(body) if body else None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


def _write_isolated_config(base: Path) -> dict:
    """Fresh Jupyter dirs plus settings that keep the front end quiet and deterministic."""
    dirs = {name: base / name for name in
            ("config", "data", "runtime", "ipython", "settings", "workspaces")}
    for path in dirs.values():
        path.mkdir(parents=True)
    # Server side: no news feed, no update check, no PyPI extension manager.
    (dirs["config"] / "jupyter_lab_config.py").write_text(
        "c.LabApp.news_url = None\n"
        "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n"
        "c.LabApp.extension_manager = 'readonly'\n"
    )
    # Front end: no announcements plugin (it asks about news in a toast).
    (dirs["config"] / "labconfig").mkdir()
    (dirs["config"] / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    settings = dirs["settings"]
    # Every cell in the DOM (no virtual windowing), so all outputs can be inspected.
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return dirs


def _kernel_pids(runtime_dir: Path) -> list[int]:
    """Processes whose command line names our private runtime dir: the kernels we launched."""
    marker = str(runtime_dir)
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


def _stop_server(server: LabServer) -> None:
    process = server.process
    kernels = _kernel_pids(server.runtime_dir)
    if process.poll() is None:
        try:  # polite: the server shuts its kernels down, then exits
            server.api("/api/shutdown", method="POST", timeout=5)
        except (OSError, urllib.error.URLError):
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Kernels run in sessions of their own; end those that are still ours.
    for pid in set(kernels) | set(_kernel_pids(server.runtime_dir)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _die_with_parent() -> None:
    """In the server process before exec: own session, and SIGTERM when pytest dies.

    The finalizer stops the server in the normal case; this covers a pytest
    that is killed outright (its kernels then exit with their parent, as
    ipykernel watches its parent process).
    """
    os.setsid()
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def extra_notebooks() -> list[Path]:
    """Notebooks named in COLLAB_BROWSER_NOTEBOOKS (os.pathsep-separated), checked the same way."""
    value = os.environ.get("COLLAB_BROWSER_NOTEBOOKS", "")
    return [(REPO_ROOT / item).resolve() for item in value.split(os.pathsep) if item.strip()]


def _course_notebooks() -> dict:
    notebooks = {
        "region": NOTEBOOKS / "03_region_bsd.ipynb",
        "pixel": NOTEBOOKS / "04_pixel_bsd.ipynb",
    }
    for path in extra_notebooks():
        notebooks[f"extra:{path.name}"] = path
    return notebooks


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, request) -> LabServer:
    _require_chromium()  # no point starting a server without a browser
    _require_playwright()
    jupyter = jupyter_executable()
    if not jupyter.exists():
        pytest.skip(f"no `jupyter` next to {sys.executable}: run `make setup`")

    base = tmp_path_factory.mktemp("jupyterlab")
    dirs = _write_isolated_config(base)
    # The root mirrors the repository layout (notebooks/ one level down), so a
    # notebook that reaches `../assets` or `../runs` finds them.
    root = base / "root"
    (root / "notebooks").mkdir(parents=True)
    for name in ("assets", "runs", "results", "data_cache"):
        if (REPO_ROOT / name).exists():
            (root / name).symlink_to(REPO_ROOT / name)
    copied = {}
    shutil.copy2(FIXTURES / "widget_fixture.ipynb", root / "notebooks" / "widget_fixture.ipynb")
    copied["fixture"] = "notebooks/widget_fixture.ipynb"
    # The same notebook asking for another kernel: the harness must select ours.
    other = json.loads((FIXTURES / "widget_fixture.ipynb").read_text())
    other["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    (root / "notebooks" / "other_kernelspec.ipynb").write_text(json.dumps(other, indent=1))
    copied["fixture-other-kernel"] = "notebooks/other_kernelspec.ipynb"
    for key, source in _course_notebooks().items():
        if source.exists():
            shutil.copy2(source, root / "notebooks" / source.name)
            copied[key] = f"notebooks/{source.name}"

    token = secrets.token_hex(24)
    env = dict(os.environ)
    for name in ("JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTER_TOKEN", "JUPYTER_PORT",
                 "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                 "MPLBACKEND"):  # a learner's kernel picks the inline backend itself
        env.pop(name, None)
    env.update({
        "CI": "true",  # the course notebooks' smoke mode
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
        "JUPYTER_PLATFORM_DIRS": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        # Kernels import the library from this working tree even when the
        # editable install has not been made yet.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    })
    log_path = base / "jupyterlab.log"

    last_error = None
    for _attempt in range(3):  # the free port can be taken between probe and bind
        port = _free_loopback_port()
        command = [
            str(jupyter), "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={dirs['settings']}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
            "--ServerApp.terminals_enabled=False",
            "--LanguageServerManager.autodetect=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # CI containers run as root
        log = open(log_path, "ab")
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL,
                                   preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                                   start_new_session=not sys.platform.startswith("linux"))
        log.close()
        server = LabServer(base_url=f"http://127.0.0.1:{port}", token=token, root_dir=root,
                           runtime_dir=dirs["runtime"], log_path=log_path, process=process,
                           notebooks=copied)
        request.addfinalizer(lambda server=server: _stop_server(server))
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                server.api("/api/status", timeout=5)
                kernelspecs = server.api("/api/kernelspecs")
                if KERNEL_NAME not in kernelspecs["kernelspecs"]:
                    pytest.fail(f"kernel {KERNEL_NAME!r} not found by JupyterLab "
                                f"(have {sorted(kernelspecs['kernelspecs'])}): run `make setup`")
                return server
            except (OSError, urllib.error.URLError, json.JSONDecodeError) as error:
                last_error = error
                time.sleep(0.5)
        exited_by_itself = process.poll() is not None  # e.g. the port was taken meanwhile
        _stop_server(server)
        if not exited_by_itself:
            break  # it ran but never answered: a retry will not help
    pytest.fail(f"JupyterLab did not come up on 127.0.0.1 ({last_error}); log tail:\n{server.log_tail()}")


# --------------------------------------------------------------------------- browser

@pytest.fixture(scope="session")
def playwright_instance():
    sync_playwright = _require_playwright()
    _require_chromium()
    manager = sync_playwright().start()
    yield manager
    manager.stop()


@dataclass
class BrowserSession:
    context: object
    page: object
    blocked: list  # URLs of requests that did not go to the test server
    console_errors: list


@pytest.fixture
def browser_page(lab_server, playwright_instance, tmp_path) -> BrowserSession:
    """A fresh Chromium profile per test, loopback-only, closed afterwards."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    # Crash reports, caches and dconf would otherwise land in the user's home.
    browser_env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        (tmp_path / name.lower()).mkdir()
        browser_env[name] = str(tmp_path / name.lower())
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        browser_env.pop(name, None)
    context = playwright_instance.chromium.launch_persistent_context(
        str(profile),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
        service_workers="block",
        accept_downloads=False,
        timeout=120_000,
        env=browser_env,
    )
    blocked: list = []
    allowed = urllib.parse.urlsplit(lab_server.base_url).netloc

    def only_loopback(route):
        url = route.request.url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc == allowed:
            route.continue_()
        elif parts.scheme in ("data", "blob", "about"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", only_loopback)
    console_errors: list = []
    page = context.pages[0] if context.pages else context.new_page()
    page.on("console", lambda message: console_errors.append(message.text)
            if message.type == "error" else None)
    page.on("websocket", lambda socket_: None if urllib.parse.urlsplit(socket_.url).netloc == allowed
            else blocked.append(socket_.url))
    page.set_default_timeout(60_000)
    session = BrowserSession(context=context, page=page, blocked=blocked, console_errors=console_errors)
    try:
        yield session
    finally:
        try:
            context.close()
        except Exception:  # a crashed browser must not hide the test's own failure
            pass
