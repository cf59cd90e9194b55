#!/usr/bin/env python3
"""Drive a command through a pseudo-terminal, as a person at a keyboard.

argv[1] is JSON: {"argv": [...], "steps": [[expected prompt, answer], ...]}.
Each answer is typed once its prompt has appeared. Prints JSON: the whole
transcript the terminal showed (what the program wrote and the terminal
echoed) and the exit code.
"""
import json, os, pty, select, sys, time

spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(spec["argv"][0], spec["argv"])

out = b""
pos = 0  # what the steps before have matched ends here
def read_until(needle, timeout=30):
    global out, pos
    end = time.time() + timeout
    while needle.encode() not in out[pos:]:
        left = end - time.time()
        if left <= 0:
            raise SystemExit(json.dumps({"error": "timeout waiting for %r" % needle, "transcript": out.decode(errors="replace")}))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                raise SystemExit(json.dumps({"error": "ended waiting for %r" % needle, "transcript": out.decode(errors="replace")}))
            if not chunk:
                break
            out += chunk
    pos = out.index(needle.encode(), pos) + len(needle.encode())

for expect, answer in spec["steps"]:
    read_until(expect)
    os.write(fd, (answer + "\r").encode())
    time.sleep(0.2)

while True:
    r, _, _ = select.select([fd], [], [], 30)
    if not r:
        break
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
print(json.dumps({"transcript": out.decode(errors="replace"), "code": os.waitstatus_to_exitcode(status)}))
