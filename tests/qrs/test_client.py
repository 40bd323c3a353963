"""The QRS client against a real local HTTPS server that requires a client certificate and
answers as QRS does (tests/qrs_server.py): the requests it makes, and each failure's reason."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import string
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import QrsConfig
from bridge.qrs.client import QrsClient, QrsError, xrfkey
from bridge.qrs.reasons import Reason
from bridge.qrs.tls import CertificateError, client_context
from tests.certs import Certificates, make_certificates
from tests.helpers import free_port
from tests.qrs_server import QrsServer, qrs_settings

TASK_ID = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
TASK_NAME = "Reload Sales; Q1 & Q2 ?"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("qrs-certs"))


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Another CA: the server does not know its clients, the client does not trust its server."""
    return make_certificates(tmp_path_factory.mktemp("other-certs"))


@pytest.fixture
def server(certs: Certificates) -> Iterator[QrsServer]:
    running = QrsServer(certs, task_ids={TASK_ID}, task_names={TASK_NAME}).start()
    yield running
    running.stop()


def settings(server: QrsServer, **overrides: Any) -> QrsConfig:
    return QrsConfig.model_validate(qrs_settings(server, **overrides))


@pytest.fixture
async def client(server: QrsServer) -> AsyncIterator[QrsClient]:
    qrs = settings(server)
    running = QrsClient(qrs, client_context(qrs))
    yield running
    await running.aclose()


async def reason_of(client: QrsClient, key: str, value: str) -> Reason:
    with pytest.raises(QrsError) as caught:
        await client.start("id" if key == "id" else "name", value)
    return caught.value.reason


async def test_a_start_by_id_posts_with_a_fresh_xrfkey_and_the_user(
    client: QrsClient, server: QrsServer
) -> None:
    await client.start("id", TASK_ID)
    await client.start("id", TASK_ID.upper())  # a GUID in any case is the same task
    first, second = server.requests
    assert (first.method, first.path) == ("POST", f"/qrs/task/{TASK_ID}/start")
    assert second.path == first.path
    for request in (first, second):
        (key,) = request.query["xrfkey"]
        assert request.headers["x-qlik-xrfkey"] == key
        assert len(key) == 16
        assert set(key) <= set(string.ascii_letters + string.digits)
        assert request.headers["x-qlik-user"] == "UserDirectory=INTERNAL; UserId=sa_repository"
    assert first.query["xrfkey"] != second.query["xrfkey"]


async def test_a_start_by_name_sends_the_name_as_it_is(
    client: QrsClient, server: QrsServer
) -> None:
    await client.start("name", TASK_NAME)
    (request,) = server.requests
    assert request.path == "/qrs/task/start"
    assert request.query["name"] == [TASK_NAME]
    assert request.query["xrfkey"] == [request.headers["x-qlik-xrfkey"]]


async def test_the_user_comes_from_the_config(server: QrsServer) -> None:
    qrs = settings(server, user_directory="CORP", user_id="svc_qlik2mqtt")
    client = QrsClient(qrs, client_context(qrs))
    try:
        await client.start("id", TASK_ID)
    finally:
        await client.aclose()
    assert server.requests[0].headers["x-qlik-user"] == "UserDirectory=CORP; UserId=svc_qlik2mqtt"


async def test_an_unknown_task_is_not_found(client: QrsClient, server: QrsServer) -> None:
    assert await reason_of(client, "id", "00000000-0000-4000-8000-000000000000") is Reason.NOT_FOUND
    assert await reason_of(client, "name", "Reload Nothing") is Reason.NOT_FOUND
    assert len(server.requests) == 2
    # Not a GUID: never sent, so it cannot reach another QRS path.
    assert await reason_of(client, "id", "../../about") is Reason.NOT_FOUND
    assert len(server.requests) == 2


async def test_a_user_without_access_is_denied(client: QrsClient, server: QrsServer) -> None:
    server.denied = True
    assert await reason_of(client, "id", TASK_ID) is Reason.ACCESS_DENIED


async def test_a_hanging_qrs_times_out_and_never_holds_the_loop(server: QrsServer) -> None:
    server.hanging.add(TASK_NAME)
    qrs = settings(server, timeout=1.0)
    client = QrsClient(qrs, client_context(qrs))
    try:
        began = time.monotonic()
        hanging = asyncio.create_task(client.start("name", TASK_NAME))
        await client.start("id", TASK_ID)  # answered while the other one waits
        assert not hanging.done()
        with pytest.raises(QrsError) as caught:
            await hanging
        assert caught.value.reason is Reason.TIMEOUT
        assert 0.9 < time.monotonic() - began < 5
    finally:
        await client.aclose()


@pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3", "tls1.2"])
async def test_a_server_that_refuses_the_client_certificate(
    certs: Certificates, other_certs: Certificates, tls12: bool
) -> None:
    """TLS 1.2: the handshake fails with the server's alert. TLS 1.3: the alert comes on the
    first read. Either way the alert says it is the certificate (here `decrypt error`: the
    other CA has the same name, its signature does not verify)."""
    refusing = QrsServer(
        certs, client_ca=other_certs.ca_file, task_ids={TASK_ID}, tls12=tls12
    ).start()
    qrs = settings(refusing)
    client = QrsClient(qrs, client_context(qrs))
    try:
        for _ in range(3):
            assert await reason_of(client, "id", TASK_ID) is Reason.CERTIFICATE_REFUSED
    finally:
        await client.aclose()
        refusing.stop()
    assert refusing.requests == []


async def test_a_server_the_root_certificate_did_not_sign_is_not_trusted_unless_verify_is_off(
    server: QrsServer, other_certs: Certificates
) -> None:
    for verify, expected in ((True, Reason.SERVER_NOT_TRUSTED), (False, None)):
        qrs = settings(server, root_cert=str(other_certs.ca_file), verify=verify)
        client = QrsClient(qrs, client_context(qrs))
        try:
            if expected is None:
                await client.start("id", TASK_ID)
            else:
                assert await reason_of(client, "id", TASK_ID) is expected
        finally:
            await client.aclose()
    assert len(server.requests) == 1


async def test_nothing_listening_is_unreachable(server: QrsServer) -> None:
    qrs = settings(server, port=free_port(socket.SOCK_STREAM))
    client = QrsClient(qrs, client_context(qrs))
    try:
        assert await reason_of(client, "id", TASK_ID) is Reason.UNREACHABLE
    finally:
        await client.aclose()


def test_xrfkeys_are_sixteen_letters_and_digits_and_new_each_time() -> None:
    keys = {xrfkey() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(key) == 16 and key.isascii() and key.isalnum() for key in keys)


def test_certificates_that_cannot_be_loaded_name_their_key_and_not_their_content(
    server: QrsServer, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
    for key, expected in (("client_key", "qrs.client_key"), ("root_cert", "qrs.root_cert")):
        with pytest.raises(CertificateError) as caught:
            client_context(settings(server, **{key: str(garbage)}))
        assert caught.value.key == expected
        assert str(caught.value).startswith(f"{expected}: ")
        assert "c2VjcmV0" not in str(caught.value)
        assert "BEGIN" not in str(caught.value)


async def test_an_answer_whose_body_cannot_be_decoded_is_still_decided_by_its_status(
    client: QrsClient, server: QrsServer
) -> None:
    """`Content-Encoding: gzip` over a body that is not gzip: the status is the answer."""
    server.bad_gzip = True
    await client.start("id", TASK_ID)
    assert await reason_of(client, "name", "Reload Nothing") is Reason.NOT_FOUND
    assert all(request.headers["accept-encoding"] == "identity" for request in server.requests)


async def test_a_large_body_is_never_read(client: QrsClient, server: QrsServer) -> None:
    server.body_bytes = 256 * 1024 * 1024  # far more than any socket buffer holds
    assert await reason_of(client, "name", "Reload Nothing") is Reason.NOT_FOUND
    assert await asyncio.to_thread(server.body_done.wait, 30)
    assert server.body_sent < 64 * 1024 * 1024  # the server had to stop: nobody was reading


async def test_any_other_httpx_failure_is_a_qrs_error(server: QrsServer) -> None:
    """Whatever httpx raises beyond the transport's failures (here from a transport that
    stands in for the answer) is an answer too, not an exception out of `start`."""

    def undecodable(request: httpx.Request) -> httpx.Response:
        raise httpx.DecodingError("bad gzip", request=request)

    qrs = settings(server)
    client = QrsClient(qrs, client_context(qrs), transport=httpx.MockTransport(undecodable))
    try:
        assert await reason_of(client, "id", TASK_ID) is Reason.QRS_ERROR
    finally:
        await client.aclose()


async def test_no_client_certificate_is_refused(server: QrsServer, certs: Certificates) -> None:
    """TLS 1.3: the server's alert (`certificate required`) on the first read, or — as often,
    the server refuses at once — the reset that overtook it: the same answer either way."""
    qrs = settings(server)
    client = QrsClient(qrs, ssl.create_default_context(cafile=str(certs.ca_file)))
    try:
        for _ in range(10):
            assert await reason_of(client, "id", TASK_ID) is Reason.CERTIFICATE_REFUSED
    finally:
        await client.aclose()


@contextlib.contextmanager
def raw_server(answer: bytes | None) -> Iterator[int]:
    """A TCP port that is not QRS: it closes the connection at once (None), or sends
    `answer` (plain HTTP, not TLS) and closes. Loopback only."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:  # one connection: the client does not retry
        with contextlib.suppress(OSError), listener.accept()[0] as connection:
            if answer is not None:
                connection.recv(65536)
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes accept() if nobody came
        listener.close()
        thread.join(10)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, Reason.UNREACHABLE),
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", Reason.TLS_ERROR),
    ],
    ids=["closes-at-once", "plain-http"],
)
async def test_a_port_that_does_not_speak_tls_is_not_a_refused_certificate(
    server: QrsServer, answer: bytes | None, expected: Reason
) -> None:
    with raw_server(answer) as port:
        qrs = settings(server, port=port)
        client = QrsClient(qrs, client_context(qrs))
        try:
            with pytest.raises(QrsError) as caught:
                await client.start("id", TASK_ID)
        finally:
            await client.aclose()
    assert caught.value.reason is expected
    assert "certificate" not in str(caught.value)


def test_the_root_certificate_is_the_only_ca_that_vouches_for_qrs(
    server: QrsServer, certs: Certificates
) -> None:
    """Not added to the system's CAs: a certificate one of those signed is not QRS's."""
    context = client_context(settings(server))
    (only,) = context.get_ca_certs()
    assert only == ssl.create_default_context(cafile=certs.ca_file).get_ca_certs()[0]
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
