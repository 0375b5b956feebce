#!/usr/bin/env python3
"""The activity agent (`tessera ws agent`) on this machine's real /proc and pseudo-terminals.

  - a shell-like reader on a new pty: input typed into the terminal moves
    terminal.last_input_ms to the keystroke's second (the kernel updates a tty's atime only when
    it leaves an 8-second step, so the test first waits 8.5 s);
  - a busy child process: cpu.last_active_ms moves and cpu.cores is about one core;
  - POST /notice: the message appears on the terminal, control characters removed; a bad body
    is a 400;
  - SIGTERM: it exits 0.

The agent sees every process of this machine here (in a pod: the IDE's, through the shared
process namespace).

Usage: activity_agent_test.py TESSERA
"""

import http.client
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

TESSERA = sys.argv[1]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def call(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"} if body is not None else {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if data[:1] == b"{" else data


def wait_for(what, fn, timeout=20.0, interval=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def main():
    agent = subprocess.Popen([TESSERA, "ws", "agent", "--listen", "127.0.0.1:0",
                              "--interval-ms", "200"], stdout=subprocess.PIPE, text=True)
    reader = busy = None
    master = None
    try:
        line = agent.stdout.readline()
        m = re.search(r"listening on http://127.0.0.1:(\d+)", line)
        assert m, f"no address in {line!r}"
        port = int(m.group(1))
        status, a = call(port, "GET", "/activity")
        assert status == 200 and {"terminal", "cpu", "gpu"} <= set(a), a
        assert a["gpu"]["available"] is False, a  # no --gpu-file

        # A terminal: `cat` reading a pty, as a shell would.
        master, slave = pty.openpty()
        reader = subprocess.Popen(["cat"], stdin=slave, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        os.close(slave)
        before = wait_for("the agent to see the terminal", lambda: (lambda t: t if t["ttys"] >= 1
                                                                   else None)(
            call(port, "GET", "/activity")[1]["terminal"]))
        # After a whole 8-second step, typing moves the terminal's time to the keystroke's second.
        # (Other terminals of this machine count too: the reading is the newest of all.)
        time.sleep(8.5)
        typed_at = time.time() * 1000
        os.write(master, b"ls\n")  # typing: cat reads it from the slave side
        second = typed_at // 1000 * 1000
        seen = wait_for("typing to show as terminal input", lambda: (lambda t: t if t >= second
                                                                     else None)(
            call(port, "GET", "/activity")[1]["terminal"]["last_input_ms"]), timeout=5)
        log(f"terminal input seen at {(seen - typed_at) / 1000:+.2f}s from the keystroke")

        # CPU: a busy child.
        started = time.time() * 1000
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        a = wait_for("CPU activity", lambda: (lambda x: x if x["cpu"]["last_active_ms"] >= started
                                              and x["cpu"]["cores"] >= 0.5 else None)(
            call(port, "GET", "/activity")[1]))
        log(f"cpu {a['cpu']['cores']:.2f} cores while busy")

        # A notice reaches the terminal, without control characters.
        while select.select([master], [], [], 0.2)[0]:
            os.read(master, 4096)  # drain the echo
        status, body = call(port, "POST", "/notice", {"message": "stopping soon\x1b[2J"})
        assert status == 200 and body["terminals"] >= 1, (status, body)
        got = b""
        end = time.time() + 5
        while time.time() < end and b"stopping soon" not in got:
            if select.select([master], [], [], 0.2)[0]:
                got += os.read(master, 4096)
        assert b"[tessera] stopping soon [2J" in got and b"\x1b" not in got, got
        status, _ = call(port, "POST", "/notice", {"text": 1})
        assert status == 400, status

        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=10) == 0
        log("ok")
        return 0
    finally:
        for p in (busy, reader, agent):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if master is not None:
            os.close(master)


if __name__ == "__main__":
    sys.exit(main())
