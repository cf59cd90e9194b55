#!/usr/bin/env python3
"""Collects mail the way the billing software does, with Python's poplib (a
client nobody here wrote): log in, STAT, UIDL, RETR each, DELE if asked, QUIT.
Prints one JSON object.

Usage: pop3client.py '{"host":..., "port":..., "mode":"plain|stls|ssl",
  "user":..., "password":..., "dele": false, "quit": true}'
"""
import base64, json, poplib, ssl, sys

a = json.loads(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if a.get("mode") == "ssl":
    p = poplib.POP3_SSL(a["host"], a["port"], context=ctx, timeout=60)
else:
    p = poplib.POP3(a["host"], a["port"], timeout=60)
    if a.get("mode") == "stls":
        p.stls(context=ctx)
out = {"welcome": p.getwelcome().decode()}
p.user(a["user"])
p.pass_(a["password"])
out["stat"] = list(p.stat())
out["uidl"] = [x.decode() for x in p.uidl()[1]]
out["messages"] = []
for i in range(1, out["stat"][0] + 1):
    resp, lines, octets = p.retr(i)
    raw = b"\r\n".join(lines) + b"\r\n"
    out["messages"].append({"octets": octets, "raw": base64.b64encode(raw).decode()})
    if a.get("dele"):
        p.dele(i)
if a.get("quit", True):
    out["quit"] = p.quit().decode()
print(json.dumps(out))
