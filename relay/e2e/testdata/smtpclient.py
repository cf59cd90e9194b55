#!/usr/bin/env python3
"""A billing-software stand-in built on Python's smtplib (a client nobody here
wrote). Sends `count` mails over `threads` connections and prints one JSON
line per mail, flushed as soon as the server answered it, so that a test that
kills the relay knows exactly which mails got a 250.

Usage: smtpclient.py '{"host":..., "port":..., "mode":"plain|starttls|ssl",
  "user":..., "password":..., "mech":"PLAIN|LOGIN", "from":..., "to":...,
  "count":1, "threads":1, "size":2000, "prefix":"m", "file": optional path,
  "resubmit": N, "addrfile": optional path}'

With "resubmit", a mail whose 250 was not seen (connection lost, relay
killed, 4xx) is sent again, byte for byte, up to N times, as billing software
does; "addrfile" holds the relay's current host:port, read at each connection
(a restarted relay listens on a new port).
"""
import json, smtplib, ssl, sys, threading, time

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
    host, port = a["host"], a["port"]
    if a.get("addrfile"):
        host, port = open(a["addrfile"]).read().strip().rsplit(":", 1)
    if a.get("mode") == "ssl":
        s = smtplib.SMTP_SSL(host, port, context=ctx, timeout=60)
    else:
        s = smtplib.SMTP(host, port, timeout=60)
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
    if a.get("resubmit"):
        return resubmitting(ids)
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


def send(s, i):
    code, resp = s.mail(a["from"])
    if code == 250:
        code, resp = s.rcpt(a["to"])
        if code == 250:
            return s.data(message(i))
    s.rset()
    return code, resp


def resubmitting(ids):
    s = None
    for i in ids:
        for tries in range(1, a["resubmit"] + 1):
            try:
                if s is None:
                    s = connect()
                code, resp = send(s, i)
                if code < 400 or code >= 500:
                    out(i=i, code=code, resp=resp.decode(errors="replace"), stage="DATA", tries=tries)
                    break
            except Exception as e:  # the relay was killed: resubmit
                s = None
                code, resp = 0, repr(e).encode()
            time.sleep(0.05)
        else:
            out(i=i, code=code, resp=resp.decode(errors="replace"), stage="gave up", tries=tries)
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
