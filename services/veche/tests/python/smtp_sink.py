"""A real SMTP server on loopback for the mail tests (aiosmtpd): every message it
accepts is kept as it arrived, one .eml file per recipient, in DIR. Some addresses
behave as real servers do: bounce@... is refused for good at RCPT (550), and each new
message (by subject) to flaky@... is turned away for now at DATA (451) the first time
it comes, and accepted when it comes again.

usage: smtp_sink.py PORT DIR   (prints "ready" once listening; runs until stdin closes)
"""

import email
import os
import sys
import time

from aiosmtpd.controller import Controller

port, folder = int(sys.argv[1]), sys.argv[2]
os.makedirs(folder, exist_ok=True)
turned_away = set()


class Keep:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("bounce@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        subject = email.message_from_bytes(envelope.original_content).get("Subject")
        for to in envelope.rcpt_tos:
            if to.lower().startswith("flaky@") and (to, subject) not in turned_away:
                turned_away.add((to, subject))
                return "451 4.3.0 try again later"
        for to in envelope.rcpt_tos:
            name = f"{time.time_ns()}-{to}.eml"
            tmp = os.path.join(folder, "." + name)
            with open(tmp, "wb") as f:
                f.write(envelope.original_content)
            os.rename(tmp, os.path.join(folder, name))
        return "250 OK"


controller = Controller(Keep(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
