"""A real SMTP server for the end-to-end tests (aiosmtpd), on loopback.

    python3 smtp_sink.py PORT DIR

Each accepted message is written to DIR as N.json: {"mail_from", "rcpt_tos", "data" (the
raw message as the server received it), "login" (the AUTH user, or null)}. Recipients whose local part starts with `reject`
are refused with 550 (a permanent failure), those starting with `defer` with 451 (a
temporary one). A message to a `flaky…` recipient is refused with 451 after its DATA the
first time its Message-ID is seen (recorded as deferred-N.json) and accepted the next time. The server stops when its standard input closes, so it never outlives the
test that started it.
"""
import json
import logging
import os
import sys
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

# The one account AUTH accepts (over plain text: this server is for tests on loopback).
USER, PASSWORD = b"ada", b"p@ss word"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER and auth_data.password == PASSWORD
    return AuthResult(success=ok, auth_data=auth_data.login.decode() if ok else None)


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.deferred = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 no such user here"
        if local.startswith("defer"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        message_id = BytesHeaderParser().parsebytes(envelope.original_content)["Message-ID"]
        flaky = any(r.split("@", 1)[0].lower().startswith("flaky") for r in envelope.rcpt_tos)
        first_time = message_id not in self.deferred
        name = f"{self.count}.json"
        if flaky and first_time:
            self.deferred.add(message_id)
            name = f"deferred-{self.count}.json"
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "login": session.auth_data if session.authenticated else None,
        }
        tmp = os.path.join(self.directory, f".{self.count}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, name))
        if name.startswith("deferred"):
            return "451 4.3.0 mailbox busy, try again"
        return "250 Message accepted for delivery"


def main():
    # aiosmtpd warns about its own use of a deprecated attribute on every AUTH.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(
        Sink(directory),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


main()
