"""A second SMSC for RNS's tests, built on PyPI's smpp34 server (an SMPP 3.4
implementation with a Rust core, written by people who are not us): framing,
sessions, sequence numbers, windowing and timers are that library's. This script
only decides what to answer and which receipts to push.

    python3 smsc34.py --smpp-port 2775 --control-port 8775 --system-id rns --password secret

It takes binds with that system id (a bind with another one is unbound at once;
the library's Python server does not show the password, so --password is only
accepted for the same command line as smsc.js),
answers submit_sm with a message id, and later pushes a delivery receipt as
deliver_sm (esm_class 0x04, the standard "id:... stat:..." text and the
receipted_message_id / message_state TLVs) on a session that can receive.
Concatenated parts (UDH) are recorded with their part and parts.

Control over HTTP on --control-port, the same as smsc.js for what both support:
  PUT  /knobs     {"receipt_delay_milliseconds", "answer_delay_milliseconds",
                   "undeliverable_rate", "loss_rate", "duplicate_rate",
                   "throttle_rate"} (merged; an unknown knob is a 422)
  POST /drop      unbinds every session at once (the SMSC ends the binds)
  GET  /counts    its counters
  GET  /messages  every submitted part (receipt_lost: its receipt was never
                  to be sent)
"""

import argparse
import asyncio
import json
import random
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import smpp34

DATA_CODING_UCS2 = 0x08
ESM_CLASS_UDH_INDICATOR = 0x40
ESM_CLASS_DELIVERY_RECEIPT = 0x04
MESSAGE_STATE_DELIVERED = 2
MESSAGE_STATE_UNDELIVERABLE = 5


class Smsc:
    """What the SMSC knows: knobs, counters, messages and bound sessions. The
    asyncio loop and the HTTP control thread share it under one lock."""

    def __init__(self, system_id):
        self.system_id = system_id
        self.lock = threading.Lock()
        self.knobs = {
            "receipt_delay_milliseconds": 100,
            "answer_delay_milliseconds": 0,
            "undeliverable_rate": 0.0,
            "loss_rate": 0.0,
            "duplicate_rate": 0.0,
            "throttle_rate": 0.0,
        }
        self.counts = {
            "binds": 0,
            "refused_binds": 0,
            "unbinds": 0,
            "submits": 0,
            "throttled": 0,
            "accepted": 0,
            "receipts_sent": 0,
            "receipts_acknowledged": 0,
            "receipts_lost": 0,
            "dropped_sessions": 0,
        }
        self.messages = []
        self.sessions = {}
        self.next_id = 1
        self.loop = None

    def count(self, name, by=1):
        with self.lock:
            self.counts[name] += by

    def knob(self, name):
        with self.lock:
            return self.knobs[name]

    def chance(self, name):
        return random.random() < self.knob(name)

    async def serve(self, port):
        self.loop = asyncio.get_running_loop()
        server = smpp34.Server(host="127.0.0.1", port=port, system_id="rns-test-smsc34")
        await server.start()
        while True:
            event = await server.next()
            if isinstance(event, smpp34.Esme):
                self.bound(event)
            elif isinstance(event, smpp34.SubmitSmEvent):
                asyncio.create_task(self.submitted(event))
            elif isinstance(event, smpp34.Unbound):
                with self.lock:
                    if self.sessions.pop(event.session_id, None) is not None:
                        self.counts["unbinds"] += 1

    def bound(self, esme):
        if esme.system_id != self.system_id:
            self.count("refused_binds")
            asyncio.ensure_future(esme.unbind())
            return
        with self.lock:
            self.counts["binds"] += 1
            self.sessions[esme.session_id] = esme

    async def submitted(self, event):
        self.count("submits")
        delay = self.knob("answer_delay_milliseconds")
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if self.chance("throttle_rate"):
            self.count("throttled")
            event.reject(smpp34.ESME_RTHROTTLED)
            return
        part, parts = concatenation(event.esm_class, event.short_message)
        with self.lock:
            message_id = format(self.next_id, "010x")
            self.next_id += 1
            self.counts["accepted"] += 1
            message = {
                "id": message_id,
                "source": event.source_addr,
                "destination": event.destination_addr,
                "text": text_of(event.data_coding, event.esm_class, event.short_message),
                "data_coding": event.data_coding,
                "part": part,
                "parts": parts,
                "registered_delivery": event.registered_delivery,
                "submitted": smpp_time(),
                "state": "UNDELIV" if random.random() < self.knobs["undeliverable_rate"] else "DELIVRD",
            }
            self.messages.append(message)
        event.accept(message_id)
        if event.registered_delivery & 0x03 == 0:
            return
        if self.chance("loss_rate"):
            self.count("receipts_lost")
            message["receipt_lost"] = True
            return
        copies = 2 if self.chance("duplicate_rate") else 1
        await asyncio.sleep(self.knob("receipt_delay_milliseconds") / 1000)
        for _ in range(copies):
            await self.send_receipt(message)

    async def send_receipt(self, message):
        """Pushes the receipt on a session that can receive, waiting up to ten
        seconds for one to be bound."""
        for _ in range(50):
            with self.lock:
                receivers = [esme for esme in self.sessions.values() if esme.can_receive]
            if receivers:
                break
            await asyncio.sleep(0.2)
        else:
            return
        delivered = message["state"] == "DELIVRD"
        text = (
            f"id:{message['id']} sub:001 dlvrd:{'001' if delivered else '000'} "
            f"submit date:{message['submitted']} done date:{smpp_time()} "
            f"stat:{message['state']} err:{'000' if delivered else '001'} text:"
        )
        self.count("receipts_sent")
        try:
            answer = await random.choice(receivers).deliver_sm(
                message["source"],
                text.encode("ascii"),
                source_addr=message["destination"],
                esm_class=ESM_CLASS_DELIVERY_RECEIPT,
                tlvs=[
                    smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, message["id"].encode("ascii") + b"\0"),
                    smpp34.Tlv(
                        smpp34.TLV_MESSAGE_STATE,
                        bytes([MESSAGE_STATE_DELIVERED if delivered else MESSAGE_STATE_UNDELIVERABLE]),
                    ),
                ],
            )
        except Exception:  # the session ended under it: the receipt is lost
            return
        if answer.is_success:
            self.count("receipts_acknowledged")

    def drop(self):
        with self.lock:
            sessions = list(self.sessions.values())
            self.sessions.clear()
            self.counts["dropped_sessions"] += len(sessions)
        def unbind_each():
            for esme in sessions:
                asyncio.ensure_future(esme.unbind())

        self.loop.call_soon_threadsafe(unbind_each)
        return len(sessions)


def concatenation(esm_class, body):
    """(part, parts) from a concatenation UDH, (1, 1) without one."""
    if not esm_class & ESM_CLASS_UDH_INDICATOR or not body:
        return 1, 1
    header = body[1 : 1 + body[0]]
    index = 0
    while index + 1 < len(header):
        identifier, length = header[index], header[index + 1]
        element = header[index + 2 : index + 2 + length]
        if identifier == 0x00 and length == 3:
            return element[2], element[1]
        if identifier == 0x08 and length == 4:
            return element[3], element[2]
        index += 2 + length
    return 1, 1


def text_of(data_coding, esm_class, body):
    if esm_class & ESM_CLASS_UDH_INDICATOR and body:
        body = body[1 + body[0] :]
    if data_coding == DATA_CODING_UCS2:
        return body.decode("utf-16-be", errors="replace")
    return body.decode("latin-1")


def smpp_time():
    return datetime.now(timezone.utc).strftime("%y%m%d%H%M")


def control_handler(smsc):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *arguments):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            with smsc.lock:
                if self.path == "/counts":
                    return self.reply(200, dict(smsc.counts))
                if self.path == "/messages":
                    return self.reply(200, list(smsc.messages))
            self.reply(404, {"error": {"code": "not_found", "message": self.path}})

        def do_PUT(self):
            if self.path != "/knobs":
                return self.reply(404, {"error": {"code": "not_found", "message": self.path}})
            length = int(self.headers.get("Content-Length") or 0)
            try:
                changes = json.loads(self.rfile.read(length) or b"{}")
            except ValueError as error:
                return self.reply(400, {"error": {"code": "invalid_json", "message": str(error)}})
            with smsc.lock:
                unknown = [name for name in changes if name not in smsc.knobs]
                if unknown:
                    return self.reply(422, {"error": {"code": "unknown_knob", "message": unknown[0]}})
                smsc.knobs.update(changes)
                return self.reply(200, dict(smsc.knobs))

        def do_POST(self):
            if self.path != "/drop":
                return self.reply(404, {"error": {"code": "not_found", "message": self.path}})
            self.reply(200, {"dropped": smsc.drop()})

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smpp-port", type=int, default=2775)
    parser.add_argument("--control-port", type=int, default=8775)
    parser.add_argument("--system-id", default="rns")
    parser.add_argument("--password", default="secret")
    arguments = parser.parse_args()
    smsc = Smsc(arguments.system_id)
    control = ThreadingHTTPServer(("127.0.0.1", arguments.control_port), control_handler(smsc))
    threading.Thread(target=control.serve_forever, daemon=True).start()
    asyncio.run(smsc.serve(arguments.smpp_port))


if __name__ == "__main__":
    main()
