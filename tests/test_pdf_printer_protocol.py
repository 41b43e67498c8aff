"""The PDF printer against a stand-in browser that speaks the DevTools pipe (fd 3 in, fd 4 out):
the cases a real Chromium shows only by chance. A late load event of the page the navigation
replaced must not start the print; a process the browser left in its group when it exited is
killed. (tests/test_report_pdf.py prints with the real Chromium.)"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from stability_lib.report.pdf_printer import PdfPrinter

# Long enough for any loaded machine: a bound on waiting for a file, never a measured duration.
WAIT_BOUND_S = 30

# Answers the printer's commands. Page.navigate is answered after a late load event of the
# about:blank page it replaces (Page.loadEventFired, which names no document, and the lifecycle
# event "load" of the old loader); the report's own load follows only if no command arrives within
# HOLD_S: a print asked before it gets the PDF of a page still loading.
FAKE_BROWSER = """\
#!{python}
import base64, json, os, select, sys

HOLD_S = 2.0
SESSION, FRAME = "S1", "F1"
commands, replies = os.fdopen(3, "rb", buffering=0), 4
buffer = b""
loaded = False

def send(message):
    os.write(replies, json.dumps(message).encode() + b"\\0")

def event(method, params):
    send({{"method": method, "params": params, "sessionId": SESSION}})

def lifecycle(name, loader):
    event("Page.lifecycleEvent", {{"frameId": FRAME, "loaderId": loader, "name": name, "timestamp": 1}})

def read(timeout=None):
    global buffer
    while b"\\0" not in buffer:
        if not select.select([commands], [], [], timeout)[0]:
            return None
        chunk = commands.read(1 << 16)
        if not chunk:
            sys.exit(0)
        buffer += chunk
    message, buffer = buffer.split(b"\\0", 1)
    return json.loads(message)

def answer(message):
    global loaded
    method, reply = message["method"], {{"id": message["id"], "result": {{}}}}
    if "sessionId" in message:
        reply["sessionId"] = message["sessionId"]
    if method == "Browser.close":
        sys.exit(0)
    if method == "Target.createTarget":
        reply["result"] = {{"targetId": FRAME}}
    elif method == "Target.attachToTarget":
        reply["result"] = {{"sessionId": SESSION}}
    elif method == "Page.printToPDF":
        text = b"the report, loaded" if loaded else b"a page still loading"
        reply["result"] = {{"data": base64.b64encode(text).decode()}}
    elif method == "Page.navigate":
        event("Page.loadEventFired", {{"timestamp": 1}})  # late, of about:blank
        lifecycle("load", "BLANK")
        reply["result"] = {{"frameId": FRAME, "loaderId": "REPORT"}}
        send(reply)
        early = read(timeout=HOLD_S)
        if early is not None:  # asked before the report loaded
            answer(early)
        loaded = True
        lifecycle("init", "REPORT")
        event("Page.loadEventFired", {{"timestamp": 2}})
        lifecycle("load", "REPORT")
        return
    send(reply)

while True:
    answer(read())
"""


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _wait_for_content(path: Path) -> str:
    deadline = time.monotonic() + WAIT_BOUND_S
    while not (path.is_file() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path.name} was never written"
        time.sleep(0.05)
    return path.read_text().strip()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_late_load_event_of_the_replaced_page_does_not_start_the_print(tmp_path: Path) -> None:
    browser = _executable(tmp_path / "fake-chromium", FAKE_BROWSER.format(python=sys.executable))
    page = tmp_path / "report.html"
    page.write_text("<!doctype html><p>report</p>")
    with PdfPrinter(str(browser)) as printer:
        printed = printer.print_pdf(page, tmp_path / "report.pdf", timeout_s=WAIT_BOUND_S)
    assert printed.read_bytes() == b"the report, loaded"


def test_a_process_left_in_the_browsers_group_after_it_exits_is_killed(tmp_path: Path) -> None:
    # A "browser" that starts a helper in its own process group, then exits without reaping it.
    helper_pid = tmp_path / "helper.pid"
    browser = _executable(tmp_path / "fake-chromium", f"#!/bin/sh\nsleep 300 &\necho $! > {helper_pid}\n")
    printer = PdfPrinter(str(browser))
    helper = int(_wait_for_content(helper_pid))
    try:
        printer._proc.wait(timeout=WAIT_BOUND_S)  # the browser is gone, its helper runs on
        assert _running(helper)
        printer.close()
        deadline = time.monotonic() + WAIT_BOUND_S  # SIGKILL is delivered at once; bounded all the same
        while _running(helper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(helper), "a process of the browser's group outlived close()"
    finally:
        if _running(helper):
            os.kill(helper, signal.SIGKILL)
