#!/usr/bin/env python3
"""A billing-software stand-in built on Python's smtplib (a client nobody here
wrote). Sends `count` mails over `threads` connections and prints one JSON
line per mail, flushed as soon as the server answered it, so that a test that
kills the relay knows exactly which mails got a 250.

Usage: smtpclient.py '{"host":..., "port":..., "mode":"plain|starttls|ssl",
  "user":..., "password":..., "mech":"PLAIN|LOGIN", "from":..., "to":...,
  "count":1, "threads":1, "size":2000, "prefix":"m", "file": optional path}'
"""
import json, smtplib, ssl, sys, threading

a = json.loads(sys.argv[1])
if a.get("cafile"):
    ctx = ssl.create_default_context(cafile=a["cafile"])  # verify, hostname included
else:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the relay's self-signed certificate
lock = threading.Lock()


def out(**kw):
    with lock:
        print(json.dumps(kw), flush=True)


def connect():
    if a.get("mode") == "ssl":
        s = smtplib.SMTP_SSL(a["host"], a["port"], context=ctx, timeout=60)
    else:
        s = smtplib.SMTP(a["host"], a["port"], timeout=60)
        if a.get("mode") == "starttls":
            s.starttls(context=ctx)
    s.ehlo("billing.cabinet.lan")
    if a.get("user"):
        s.user, s.password = a["user"], a["password"]
        if a.get("mech") == "LOGIN":
            s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        else:
            s.auth("PLAIN", s.auth_plain)
    return s


def message(i):
    if a.get("file"):
        return open(a["file"], "rb").read()
    mid = "<%s-%d@billing.test>" % (a.get("prefix", "m"), i)
    body = ("x" * 76 + "\r\n") * (a.get("size", 2000) // 78 + 1)
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: lot %s-%d\r\nMessage-ID: %s\r\n\r\n%s"
            % (a["from"], a["to"], a.get("prefix", "m"), i, mid, body)).encode()


def worker(ids):
    s = None
    for i in ids:
        try:
            if s is None:
                s = connect()
            code, resp = s.mail(a["from"])
            if code != 250:
                out(i=i, code=code, resp=resp.decode(errors="replace"), stage="MAIL")
                s.rset()
                continue
            code, resp = s.rcpt(a["to"])
            if code != 250:
                out(i=i, code=code, resp=resp.decode(errors="replace"), stage="RCPT")
                s.rset()
                continue
            code, resp = s.data(message(i))
            out(i=i, code=code, resp=resp.decode(errors="replace"), stage="DATA")
        except smtplib.SMTPResponseException as e:
            out(i=i, code=e.smtp_code, resp=str(e.smtp_error), stage="error")
            s = None
        except Exception as e:  # connection refused, reset, killed relay
            out(i=i, code=0, resp=repr(e), stage="error")
            s = None
    if s is not None:
        try:
            s.quit()
        except Exception:
            pass


n, t = a.get("count", 1), a.get("threads", 1)
ths = [threading.Thread(target=worker, args=(range(k, n, t),)) for k in range(t)]
for th in ths:
    th.start()
for th in ths:
    th.join()
