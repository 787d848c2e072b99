"""offload's warm-LibreOffice helper: starts one long-lived `soffice --accept=pipe,...` and
drives it over UNO.

Usage: uno_helper.py PIPE_NAME START_TIMEOUT_SECS -- SOFFICE ARGS...

The helper runs inside the conversion sandbox and launches LibreOffice there as its own child;
the two talk over LibreOffice's named pipe (a Unix socket in the sandbox's /tmp), never TCP.

Protocol (one JSON object per line): the helper prints {"ready": true} once connected, then
reads requests {"input": path, "output": path, "filter": name, "options": {k: v},
"filter_options": text|null, "landscape": bool, "password": text|null} from stdin and answers each with {"ok": true, "ms": n}
or {"error": text, "stage": "load"|"password"|"export"|"bridge"}. `options` is the PDF
filter's FilterData (values typed: bool, int, string); a password is only ever used to load the
document, never written anywhere.

When stdin closes — the worker exited, even by `kill -9` — the helper kills its process group,
which is LibreOffice's: no warm LibreOffice outlives its worker.

Documents are loaded hidden (spreadsheets do not load otherwise), read-only, without updating
links and without running macros. Shipped inside the offload binary; run with the system
Python that has LibreOffice's `uno` module (Debian: python3-uno).
"""

import json
import os
import signal
import subprocess
import sys
import time

import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException
from com.sun.star.lang import DisposedException

NEVER_EXECUTE = 0  # com.sun.star.document.MacroExecMode.NEVER_EXECUTE
NO_UPDATE = 0  # com.sun.star.document.UpdateDocMode.NO_UPDATE


def props(**values):
    return tuple(PropertyValue(Name=k, Value=v) for k, v in values.items())


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def connect(pipe, timeout, office):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    url = "uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe
    deadline = time.monotonic() + timeout
    while True:
        try:
            ctx = resolver.resolve(url)
            return ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        except NoConnectException:
            if office.poll() is not None:
                raise RuntimeError("LibreOffice exited with %s before accepting connections" % office.returncode)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def make_landscape(doc):
    """Every page style landscape (text documents, spreadsheets). The IsLandscape flag alone
    changes nothing: the page's width and height are swapped too."""
    styles = doc.StyleFamilies.getByName("PageStyles")
    for name in styles.ElementNames:
        style = styles.getByName(name)
        width, height = style.Width, style.Height
        style.IsLandscape = True
        if width < height:
            style.Width, style.Height = height, width


def load(desktop, req):
    descriptor = dict(Hidden=True, ReadOnly=True, UpdateDocMode=NO_UPDATE, MacroExecutionMode=NEVER_EXECUTE)
    password = req.get("password")
    if password is not None:
        descriptor["Password"] = password
    return desktop.loadComponentFromURL(uno.systemPathToFileUrl(req["input"]), "_blank", 0, props(**descriptor))


def convert(desktop, req):
    started = time.monotonic()
    doc = None
    # The worker only sends a password for a document it found encrypted; such a document that
    # does not load (LibreOffice returns nothing, or aborts type detection) was not opened by it.
    failed = "password" if req.get("password") is not None else "load"
    try:
        try:
            doc = load(desktop, req)
        except DisposedException:
            raise  # LibreOffice itself is gone, not this document's fault
        except Exception as e:  # a document LibreOffice cannot read
            return {"error": str(e) or type(e).__name__, "stage": failed}
        if doc is None:
            return {"error": "LibreOffice could not load the document", "stage": failed}
        if req.get("landscape"):
            try:
                make_landscape(doc)
            except DisposedException:
                raise
            except Exception as e:
                return {"error": "could not turn the pages landscape: %s" % (str(e) or type(e).__name__), "stage": "export"}
        store = dict(FilterName=req["filter"])
        options = req.get("options") or {}
        if options:
            store["FilterData"] = uno.Any("[]com.sun.star.beans.PropertyValue", props(**options))
        if req.get("filter_options"):
            store["FilterOptions"] = req["filter_options"]
        try:
            doc.storeToURL(uno.systemPathToFileUrl(req["output"]), props(**store))
        except DisposedException:
            raise
        except Exception as e:
            return {"error": str(e) or type(e).__name__, "stage": "export"}
        return {"ok": True, "ms": int((time.monotonic() - started) * 1000)}
    finally:
        if doc is not None:
            try:
                doc.close(True)
            except Exception:
                pass


def serve(desktop, office):
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if office.poll() is not None:
            answer({"error": "LibreOffice exited with %s" % office.returncode, "stage": "bridge"})
            return
        try:
            answer(convert(desktop, json.loads(line)))
        except Exception as e:  # the bridge itself broke: LibreOffice died or hung up
            answer({"error": str(e) or type(e).__name__, "stage": "bridge"})
            return


def main():
    pipe = sys.argv[1]
    timeout = float(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1:]
    try:
        office = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        desktop = connect(pipe, timeout, office)
        answer({"ready": True})
        serve(desktop, office)
    finally:
        # Our group is LibreOffice's: take it (and ourselves) down with the session.
        os.killpg(os.getpgrp(), signal.SIGKILL)


if __name__ == "__main__":
    main()
