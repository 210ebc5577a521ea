"""A real SMTP server for the email tests (aiosmtpd, from .cache/servers-venv).

usage: smtp_server.py PORT DIR

Answers the first message's DATA with `451 4.3.0 try again later` (a client must retry), accepts every later
one and writes it to DIR/N.eml (N = 1, 2, ...). Each refusal and acceptance is a line on stdout; "ready" is
printed once it listens.
"""

import asyncio
import os
import sys

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.refused = 0
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refused == 0:
            self.refused += 1
            print("refused 451", flush=True)
            return "451 4.3.0 try again later"
        self.accepted += 1
        path = os.path.join(self.out_dir, f"{self.accepted}.eml")
        tmp = path + ".part"
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
        os.rename(tmp, path)
        print(f"accepted {path} to={','.join(envelope.rcpt_tos)}", flush=True)
        return "250 OK"


def main():
    port, out_dir = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    controller = Controller(Handler(out_dir), hostname="127.0.0.1", port=port, data_size_limit=50_000_000)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.new_event_loop().run_until_complete(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
