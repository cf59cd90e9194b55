#!/usr/bin/env python3
"""Submits one mail with Python's smtplib, stopping in the middle of DATA
until a line arrives on standard input: a test reloads or stops the relay
meanwhile. Prints "data-started", then one JSON line with the final reply.

Usage: slowsubmit.py '{"host":..., "port":..., "user":..., "password":...,
  "from":..., "to":...}'
"""
import json, smtplib, ssl, sys

a = json.loads(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the relay's self-signed certificate
s = smtplib.SMTP(a["host"], a["port"], timeout=60)
s.starttls(context=ctx)
s.ehlo("billing.cabinet.lan")
s.login(a["user"], a["password"])
s.mail(a["from"])
s.rcpt(a["to"])
code, _ = s.docmd("DATA")
assert code == 354, code
head = ("From: <%s>\r\nTo: <%s>\r\nSubject: across a reload\r\n"
        "Message-ID: <reload-1@billing.test>\r\n\r\nfirst half\r\n" % (a["from"], a["to"]))
s.send(head.encode())
print("data-started", flush=True)
sys.stdin.readline()
s.send(b"second half\r\n.\r\n")
code, resp = s.getreply()
print(json.dumps({"code": code, "resp": resp.decode(errors="replace")}), flush=True)
s.quit()
