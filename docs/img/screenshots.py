#!/usr/bin/env python3
"""Takes the dashboard screenshots in docs/img/ from a running `allot up --demo`.

Usage (from the repository root, with `allot up --emulate 4x8xH200 --demo` running
for a minute or two so that the charts have history and the queue is full):

    python3 docs/img/screenshots.py http://127.0.0.1:7070 "$ADMIN_TOKEN" [OUT_DIR]

Needs Debian's `chromium` and `chromium-driver`; speaks WebDriver to chromedriver
with the standard library only. Signs in the way the dashboard keeps a session (the
token in localStorage, as the sign-in form stores it), then shoots the overview, the
queue, the tenants, a running job's page with its log, the nodes, and the overview at
phone width (390 px).
"""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.load(r)["value"]
        except urllib.error.HTTPError as e:
            raise SystemExit(f"chromedriver: {method} {path}: {e.code}: {e.read().decode(errors='replace')[:500]}")

    def start(self, width, height, phone=False):
        opts = {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                     f"--window-size={width},{height}"]
        }
        if phone:
            # A headless window is at least 500 px wide; device emulation gives the
            # page a true phone viewport.
            opts["mobileEmulation"] = {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}}
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": opts}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def s(self, path):
        return f"/session/{self.session}{path}"

    def goto(self, url):
        self.call("POST", self.s("/url"), {"url": url})

    def js(self, script, *args):
        return self.call("POST", self.s("/execute/sync"), {"script": script, "args": list(args)})

    def shoot(self, path):
        png = base64.b64decode(self.call("GET", self.s("/screenshot")))
        with open(path, "wb") as f:
            f.write(png)
        print(f"{path}: {len(png) // 1024} KiB")

    def quit(self):
        if self.session:
            self.call("DELETE", self.s(""))


def api(url, token, path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"allot: GET {path}: {e.code}: {e.read().decode(errors='replace')[:500]}")


def wait_for(d, script, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if d.js(script):
            return
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    url, token = sys.argv[1].rstrip("/"), sys.argv[2]
    out = sys.argv[3] if len(sys.argv) > 3 else os.path.dirname(os.path.abspath(__file__))
    port = free_port()
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        # A running job with a few lines of log: the oldest running gang, else any.
        running = api(url, token, "/v1/queue")["running"]
        if not running:
            raise SystemExit("no running job to show: start `allot up --demo` first")
        job = next((j for j in running if j["spec"].get("replicas", 1) > 1), running[0])["id"]

        shots = [
            ("overview.png", 1280, 1000, "#/overview", "document.querySelector('#gpus-total')"),
            ("queue.png", 1280, 1000, "#/queue", "document.querySelector('#pending')"),
            ("tenants.png", 1280, 800, "#/tenants", "document.querySelector('tr[data-tenant]')"),
            ("job.png", 1280, 900, f"#/job/{job}", "(document.querySelector('#logs')||{}).textContent.includes('step')"),
            ("nodes.png", 1280, 700, "#/nodes", "document.querySelector('#view table')"),
            ("phone.png", 390, 844, "#/overview", "document.querySelector('#gpus-total')"),
        ]
        for name, w, h, route, ready in shots:
            d = Driver(port)
            d.start(w, h, phone=name == "phone.png")
            try:
                d.goto(url + "/")
                d.js("localStorage.setItem('allot.token', arguments[0]);", token)
                d.goto(url + "/" + route)
                d.call("POST", d.s("/refresh"), {})  # a hash change alone does not reload the page
                wait_for(d, "return !!(" + ready + ");", f"{route} to render")
                time.sleep(1.5)  # the charts draw after the data arrives
                d.shoot(os.path.join(out, name))
            finally:
                d.quit()
    finally:
        driver.terminate()
        driver.wait()


if __name__ == "__main__":
    main()
