"""Load a page in Debian's headless Chromium over the DevTools protocol (its pipe transport: no port, no websocket
library) and report what a person's browser would: console errors, uncaught exceptions, network requests, text."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-pipe")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# every text node of the page, shadow roots included (Bokeh renders its widgets inside shadow DOM)
ALL_TEXT_JS = """(() => { const parts = [];
  const walk = node => { if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === 3) parts.push(child.textContent);
      else if (!["SCRIPT", "STYLE", "TEMPLATE"].includes(child.nodeName)) walk(child); } };
  walk(document.documentElement); return parts.join("\\n"); })()"""


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclasses.dataclass
class PageLoad:
    errors: list[str]  # console errors/asserts, uncaught exceptions, Log-domain errors
    requests: list[str]  # every URL the page asked for that is not file:, data:, blob: or about:
    text: str  # the rendered text (shadow DOM included, scripts and styles not)
    ready: bool  # the page's readiness expression became true
    probes: dict  # name -> value of each probe expression, evaluated in order after the page was ready


class _Pipe:
    """DevTools protocol messages over Chromium's --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-terminated)."""

    def __init__(self, binary: str, profile: str):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire():  # runs in the child before exec: the pipe transport expects exactly fds 3 and 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._read(deadline)
            if reply is None:
                break
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(f"Chromium did not answer {method} within {timeout} s")

    def wait_events(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (message := self._read(deadline)) is not None:
            self.events.append(message)

    def _read(self, deadline: float) -> dict | None:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                return None
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe (did it start? try it by hand with --headless)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def load_page(path: str | Path, ready_js: str = "true", probes: dict[str, str] | None = None, timeout: float = 60,
              settle: float = 1.0, binary: str | None = None) -> PageLoad:
    """Open `path` in a fresh headless Chromium profile, wait until `ready_js` is true (or timeout), evaluate the
    probes (expressions; a promise is awaited), then collect what the page logged and requested."""
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        pipe = _Pipe(binary, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
            ready = _wait_true(pipe, session, ready_js, timeout)
            pipe.wait_events(settle)
            values = {name: _evaluate(pipe, session, expression) for name, expression in (probes or {}).items()}
            pipe.wait_events(settle)
            text = pipe.send("Runtime.evaluate", {"expression": ALL_TEXT_JS, "returnByValue": True},
                             session=session)["result"].get("value", "")
        finally:
            pipe.close()
    return PageLoad(errors=_errors(pipe.events), requests=_requests(pipe.events), text=text, ready=ready,
                    probes=values)


def _evaluate(pipe: _Pipe, session: str, expression: str):
    reply = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      session=session)
    if "exceptionDetails" in reply:
        raise RuntimeError(f"probe {expression[:80]!r} threw: {reply['exceptionDetails'].get('text')}")
    return reply["result"].get("value")


def _wait_true(pipe: _Pipe, session: str, expression: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = pipe.send("Runtime.evaluate", {"expression": f"Boolean({expression})", "returnByValue": True},
                           session=session)["result"]
        if result.get("value") is True:
            return True
        pipe.wait_events(0.25)
    return False


def _errors(events: list[dict]) -> list[str]:
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            out.append("uncaught: " + (details.get("exception", {}).get("description") or details.get("text", "")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                    for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            out.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
    return out


def _requests(events: list[dict]) -> list[str]:
    urls = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return [u for u in urls if not u.startswith(LOCAL_SCHEMES)]
