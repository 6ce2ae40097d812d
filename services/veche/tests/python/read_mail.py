"""Reads the messages an SMTP server kept (smtp_sink.py) with Python's own MIME parser
(email, policy default) and prints them as JSON: the recipient, the decoded subject,
the plain-text and HTML bodies, and each attachment, a calendar read by icalendar.

usage: read_mail.py DIR
"""

import email
import email.policy
import json
import os
import sys

import icalendar

folder = sys.argv[1]
messages = []
for name in sorted(n for n in os.listdir(folder) if n.endswith(".eml")):
    with open(os.path.join(folder, name), "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    attachments = []
    for part in msg.iter_attachments():
        found = {"filename": part.get_filename(), "content_type": part.get_content_type()}
        content = part.get_content()
        if part.get_content_type() == "text/calendar":
            event = icalendar.Calendar.from_ical(content).walk("VEVENT")[0]
            found["event"] = {
                "summary": str(event.get("SUMMARY")),
                "description": str(event.get("DESCRIPTION", "")),
                "status": str(event.get("STATUS")),
                "start": event.decoded("DTSTART").isoformat(),
            }
        else:
            found["text"] = content if isinstance(content, str) else content.decode()
        attachments.append(found)
    messages.append({
        "to": str(msg["To"]),
        "from": str(msg["From"]),
        "subject": str(msg["Subject"]),
        "multipart": msg.get_content_type(),
        "text": text.get_content() if text else None,
        "html": html.get_content() if html else None,
        "attachments": attachments,
    })
print(json.dumps(messages, ensure_ascii=False))
