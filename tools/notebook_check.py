#!/usr/bin/python3
"""Checks `bash tools/notebook.sh` as a user meets it: starts the Jupyter server it starts, then
runs notebooks through that server, all within a time bound.

Default (the ctest `notebook_server`): lists notebooks/ through the server's REST API, opens a
session on each notebook as the browser does (POST /api/sessions), and runs every code cell on
its kernel over the kernel's websocket; fails on any error output, on a kernel whose `vhostlab`
is not the build's, or on a notebook that drew no plot. Notebooks run with VHOSTLAB_SMALL=1.
Nothing is saved: the REST API only reads the notebooks.

--browser: the same server, with a real headless Chromium (Chrome DevTools Protocol over
tornado's websocket client): opens each notebook's page, runs all cells from the page
(`Jupyter.notebook.execute_all_cells()`), waits for the kernel, counts the rendered plots and
error outputs in the page, and writes a screenshot of the first plot to --screenshot-dir. The
server then serves a copy of notebooks/, since the page autosaves outputs into the files.

usage: tools/notebook_check.py [--build-dir build] [--browser [--screenshot-dir DIR]]
exit: 0 passed, 1 failed, 77 skipped (no `jupyter-notebook`, or no chromium with --browser)
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = 77


def log(msg: str) -> None:
    print(f"notebook_check: {msg}", flush=True)


class Server:
    """`bash tools/notebook.sh --no-build` on a free port, with a known token; stopped on exit."""

    def __init__(self, build: Path, tmp: Path, notebook_dir: Path | None = None):
        self.token = uuid.uuid4().hex
        runtime = tmp / "runtime"
        runtime.mkdir()
        env = dict(os.environ, VHOSTLAB_BUILD_DIR=str(build), VHOSTLAB_SMALL="1",
                   JUPYTER_RUNTIME_DIR=str(runtime), JUPYTER_CONFIG_DIR=str(tmp / "config"),
                   MPLBACKEND="module://matplotlib_inline.backend_inline")
        env.pop("PYTHONPATH", None)  # the package must come from what notebook.sh sets
        args = ["bash", str(REPO / "tools" / "notebook.sh"), "--no-build", "--port=18888",
                f"--NotebookApp.token={self.token}"]
        if notebook_dir is not None:
            args.append(f"--notebook-dir={notebook_dir}")
        self.log_path = tmp / "server.log"
        self.proc = subprocess.Popen(args, env=env, stdout=open(self.log_path, "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log()}")
            info = glob.glob(str(runtime / "nbserver-*.json"))
            if info:
                with open(info[0]) as f:
                    self.port = json.load(f)["port"]
                break
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"the server did not start within 60 s:\n{self.log()}")
        self.base = f"http://127.0.0.1:{self.port}"
        log(f"server on {self.base} (pid {self.proc.pid})")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, method: str, path: str, body: dict | None = None):
        req = urllib.request.Request(
            f"{self.base}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
        return json.loads(data) if data else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the server and kernels
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def ws_connect(url: str, headers: dict | None = None):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect
    return websocket_connect(HTTPRequest(url, headers=headers or {}),
                             max_message_size=256 * 1024 * 1024)


async def run_cells(server: Server, kernel_id: str, sources: list[str], timeout: float):
    """Executes `sources` in order on the kernel; returns (errors, png count, stdout text)."""
    conn = await ws_connect(f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels",
                            {"Authorization": f"token {server.token}"})
    import asyncio
    errors, pngs, text = [], 0, []
    session = uuid.uuid4().hex
    for src in sources:
        msg_id = uuid.uuid4().hex
        await conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "check", "session": session,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": src, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        done = False
        while not done:
            raw = await asyncio.wait_for(conn.read_message(), timeout)
            if raw is None:
                raise RuntimeError("the kernel's websocket closed")
            m = json.loads(raw)
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = m["msg_type"], m["content"]
            if kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")
            elif kind in ("display_data", "execute_result"):
                pngs += "image/png" in content.get("data", {})
            elif kind == "stream":
                text.append(content["text"])
            elif kind == "status" and content["execution_state"] == "idle":
                done = True
        if errors:
            break
    conn.close()
    return errors, pngs, "".join(text)


def check_api(server: Server, build: Path, cell_timeout: float) -> list[str]:
    import asyncio
    failures = []
    listing = server.api("GET", "/api/contents")
    names = sorted(e["name"] for e in listing["content"] if e["type"] == "notebook")
    log(f"notebooks listed by the server: {names}")
    if not {"compare_designs.ipynb", "counters.ipynb"} <= set(names):
        failures.append(f"the server's notebook dir lacks the notebooks: {names}")
    for name in names:
        nb = server.api("GET", f"/api/contents/{name}")["content"]
        sources = [c["source"] for c in nb["cells"] if c["cell_type"] == "code"]
        sess = server.api("POST", "/api/sessions", {
            "path": name, "type": "notebook", "name": name,
            "kernel": {"name": nb["metadata"].get("kernelspec", {}).get("name", "python3")}})
        probe = "import vhostlab, sys; print(vhostlab.__file__); print(sys.executable)"
        t0 = time.monotonic()
        try:
            errors, pngs, out = asyncio.run(
                run_cells(server, sess["kernel"]["id"], [probe] + sources, cell_timeout))
        finally:
            server.api("DELETE", f"/api/sessions/{sess['id']}")
        where = out.splitlines()[:2]
        log(f"{name}: {len(sources)} cells in {time.monotonic() - t0:.1f} s, {pngs} plot(s), "
            f"{len(errors)} error(s); kernel: {where}")
        if errors:
            failures.append(f"{name}: {errors[0]}")
        if not where or not where[0].startswith(str(build.resolve() / "pybind")):
            failures.append(f"{name}: the kernel's vhostlab is not the build's: {where}")
        if not errors and pngs == 0:
            failures.append(f"{name}: no plot was drawn")
    return failures


class Chromium:
    """Headless Chromium driven over the DevTools protocol (one page)."""

    def __init__(self, tmp: Path):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            raise FileNotFoundError("chromium")
        profile = tmp / "chromium"
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-port=0", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--window-size=1280,2400", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "chromium.log", "w"),
            start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start: " + (tmp / "chromium.log").read_text())
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [p for p in json.loads(r.read()) if p["type"] == "page"]
        self.ws_url = pages[0]["webSocketDebuggerUrl"]
        self.next_id = 0

    async def open(self):
        self.conn = await ws_connect(self.ws_url)

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.conn.write_message(json.dumps({"id": self.next_id, "method": method,
                                                  "params": params}))
        while True:
            m = json.loads(await self.conn.read_message())
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    async def js(self, expr: str):
        r = await self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")

    async def wait_for(self, expr: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.js(expr):
                return
            await __import__("asyncio").sleep(0.5)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)


async def browse(server: Server, chrome: Chromium, names: list[str], shots: Path | None,
                 timeout: float) -> list[str]:
    await chrome.open()
    await chrome.call("Page.enable")
    failures = []
    for name in names:
        url = f"{server.base}/notebooks/{name}?token={server.token}"
        await chrome.call("Page.navigate", url=url)
        await chrome.wait_for("typeof Jupyter !== 'undefined' && Jupyter.notebook && "
                              "Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected()",
                              60, f"{name}'s kernel to connect")
        t0 = time.monotonic()
        await chrome.js("Jupyter.notebook.execute_all_cells()")
        # Done when no code cell waits ("In [*]") and the kernel is idle.
        await chrome.wait_for(
            "Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code')"
            ".every(c => c.input_prompt_number !== '*' && c.input_prompt_number !== undefined"
            " && c.input_prompt_number !== null) && "
            "document.querySelector('#kernel_indicator_icon').classList.contains('kernel_idle_icon')",
            timeout, f"{name}'s cells to finish")
        stats = await chrome.js(
            "({cells: Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code').length,"
            " plots: document.querySelectorAll('.output_png img').length,"
            " errors: Array.from(document.querySelectorAll('.output_error'))"
            ".map(e => e.innerText.slice(0, 300))})")
        log(f"browser: {name}: {stats['cells']} cells run in {time.monotonic() - t0:.1f} s, "
            f"{stats['plots']} plot(s) rendered, {len(stats['errors'])} error output(s)")
        if stats["errors"]:
            failures.append(f"{name} (browser): {stats['errors'][0]}")
        if stats["plots"] == 0:
            failures.append(f"{name} (browser): no plot rendered")
        if shots is not None and stats["plots"]:
            # Scroll the first plot into view and shoot the window.
            await chrome.js("document.querySelector('.output_png img').scrollIntoView({block: 'center'})")
            await __import__("asyncio").sleep(1)
            shot = await chrome.call("Page.captureScreenshot", format="png")
            shots.mkdir(parents=True, exist_ok=True)
            path = shots / (Path(name).stem + ".png")
            path.write_bytes(base64.b64decode(shot["data"]))
            log(f"browser: screenshot {path}")
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", type=Path, default=REPO / "build")
    ap.add_argument("--browser", action="store_true", help="drive a headless Chromium instead")
    ap.add_argument("--screenshot-dir", type=Path, help="with --browser: where to write PNGs")
    ap.add_argument("--timeout", type=float, default=180, help="per notebook [180 s]")
    args = ap.parse_args()
    build = args.build_dir if args.build_dir.is_absolute() else Path.cwd() / args.build_dir
    try:
        import notebook  # noqa: F401  (Debian's jupyter-notebook / python3-notebook)
        import tornado  # noqa: F401
    except ImportError as e:
        log(f"SKIP: {e} (tools/setup.sh installs jupyter-notebook)")
        return SKIP
    if not glob.glob(str(build / "pybind" / "vhostlab" / "_core*.so")):
        log(f"FAIL: no built package under {build}/pybind")
        return 1
    if args.browser and not (shutil.which("chromium") or shutil.which("chromium-browser")):
        log("SKIP: no chromium (apt-get install chromium)")
        return SKIP
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vl-notebook-") as t:
        tmp = Path(t)
        served = None
        if args.browser:  # the page autosaves outputs: serve copies, keep notebooks/ clean
            served = tmp / "notebooks"
            shutil.copytree(REPO / "notebooks", served)
        server = None
        try:
            server = Server(build, tmp, served)
            if args.browser:
                import asyncio
                chrome = Chromium(tmp)
                try:
                    names = sorted(p.name for p in served.glob("*.ipynb"))
                    failures += asyncio.run(browse(server, chrome, names, args.screenshot_dir,
                                                   args.timeout))
                finally:
                    chrome.stop()
            else:
                failures += check_api(server, build, args.timeout)
        except Exception as e:  # noqa: BLE001  (report, with the server's log, and fail)
            failures.append(f"{type(e).__name__}: {e}" +
                            (f"\n--- server log ---\n{server.log()}" if server else ""))
        finally:
            if server:
                server.stop()
    for f in failures:
        log(f"FAIL: {f}")
    if not failures:
        log("OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
