"""A real SMTP server for the email tests (aiosmtpd, from .cache/servers-venv).

usage: smtp_server.py PORT DIR [--refuse-first] [--tls starttls|implicit --cert PEM --key PEM --login USER:PASSWORD]

Writes every accepted message to DIR/N.eml (N = 1, 2, ...). With --refuse-first it answers the first message's
DATA with `451 4.3.0 try again later` (a client must retry). With --tls it speaks TLS with the certificate:
`starttls` refuses any mail before STARTTLS, `implicit` (SMTPS) speaks nothing but TLS; either way every
message needs AUTH with --login first. Each refusal and acceptance is a line on stdout; "ready" is printed once
it listens.
"""

import argparse
import asyncio
import os
import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Handler:
    def __init__(self, out_dir, refuse_first):
        self.out_dir = out_dir
        self.refuse = 1 if refuse_first else 0
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refuse > 0:
            self.refuse -= 1
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


def authenticator(login):
    user, password = login.encode().split(b":", 1)

    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == user and auth_data.password == password
        print(f"auth {mechanism} {'ok' if ok else 'refused'}", flush=True)
        return AuthResult(success=ok)

    return check


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("dir")
    p.add_argument("--refuse-first", action="store_true")
    p.add_argument("--tls", choices=["starttls", "implicit"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--login")
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    kwargs = {"hostname": "127.0.0.1", "port": a.port, "data_size_limit": 50_000_000}
    if a.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)
        kwargs.update(authenticator=authenticator(a.login), auth_required=True)
        if a.tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            # The whole connection is TLS: aiosmtpd only counts STARTTLS as TLS for AUTH, so it is told not to ask.
            kwargs.update(ssl_context=context, auth_require_tls=False)
    controller = Controller(Handler(a.dir, a.refuse_first), **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.new_event_loop().run_until_complete(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
