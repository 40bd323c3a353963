"""Requests to the Qlik Sense Repository Service: start a task by id or by name.

httpx does the HTTP and the TLS (the context from `bridge.qrs.tls`) without blocking the event
loop. Every request carries a new xrfkey — 16 random letters and digits, the same in the
`xrfkey` query parameter and the `X-Qlik-Xrfkey` header (Qlik's cross-site request forgery
check) — and `X-Qlik-User`, the user the bridge acts as. A failure is a `QrsError` with a
short reason; nothing from the certificates ever goes into one.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import string
import uuid

import httpx

from bridge import __version__
from bridge.config import QrsConfig
from bridge.core.task_ids import is_task_id
from bridge.qrs.allow import TaskKey
from bridge.qrs.reasons import Reason

_XRF_ALPHABET = string.ascii_letters + string.digits
XRFKEY_LENGTH = 16


class QrsError(Exception):
    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value} ({detail})" if detail else reason.value)
        self.reason = reason
        self.detail = detail
        """For the log: an HTTP status, an exception's class and TLS alert; no secrets."""


REFUSED_ALERTS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_DECRYPT_ERROR",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)
"""The TLS alerts (`ssl.SSLError.reason`, as OpenSSL names them) a server sends when it refuses
the client certificate: none, unknown or untrusted CA, a signature that does not verify (the
CA's name matches but another key signed it: decrypt error), expired, revoked, or refused."""


def xrfkey() -> str:
    return "".join(secrets.choice(_XRF_ALPHABET) for _ in range(XRFKEY_LENGTH))


class QrsClient:
    def __init__(
        self,
        qrs: QrsConfig,
        tls: ssl.SSLContext,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if qrs.host is None:
            raise ValueError("qrs.host is not set")
        self._timeout = qrs.timeout
        self._client = httpx.AsyncClient(
            base_url=httpx.URL(scheme="https", host=qrs.host, port=qrs.port),
            verify=tls,
            timeout=httpx.Timeout(qrs.timeout),
            headers={
                "X-Qlik-User": f"UserDirectory={qrs.user_directory}; UserId={qrs.user_id}",
                "User-Agent": f"qlik2mqtt/{__version__}",
            },
            follow_redirects=False,
            trust_env=False,  # the configured certificates only, no proxy from the environment
            transport=transport,
        )

    async def start(self, key: TaskKey, value: str) -> None:
        """Start a task (QRS starts it asynchronously and answers at once). Raises QrsError."""
        if key == "id":
            if not is_task_id(value):
                raise QrsError(Reason.NOT_FOUND, "not a task id")
            await self._request("POST", f"/qrs/task/{uuid.UUID(value)}/start", {})
        else:
            await self._request("POST", "/qrs/task/start", {"name": value})

    async def about(self) -> None:
        """A harmless authenticated request (`GET /qrs/about`): QRS answers it when the
        certificates, the user and the address are right. Raises QrsError."""
        await self._request("GET", "/qrs/about", {})

    async def get(self, path: str, params: dict[str, str], max_bytes: int) -> bytes:
        """`GET path` with a new xrfkey: the body's last `max_bytes` (a longer body is read to
        its end, keeping only its tail: what a script log's last lines need). Raises QrsError."""
        return await self._request("GET", path, params, max_bytes)

    async def get_json(self, path: str, params: dict[str, str], max_bytes: int) -> object:
        """`GET path`, its JSON body (at most `max_bytes`, else QRS_ERROR). Raises QrsError."""
        body = await self._request("GET", path, params, max_bytes, whole=True)
        try:
            return json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            raise QrsError(Reason.QRS_ERROR, "not JSON") from None

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        max_bytes: int = 0,
        whole: bool = False,
    ) -> bytes:
        """One request with a new xrfkey; success is any 2xx. With `max_bytes`, the body is
        read (its tail, or with `whole` all of it and no more). Raises QrsError."""
        xrf = xrfkey()
        headers = {"X-Qlik-Xrfkey": xrf, "Accept-Encoding": "identity"}
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._client.stream(
                    method, path, params={**params, "xrfkey": xrf}, headers=headers
                ) as response,
            ):
                status = response.status_code  # unless asked for, the body is left unread
                body = b""
                if max_bytes and httpx.codes.is_success(status):
                    body = await _tail(response, max_bytes, whole)
        except (TimeoutError, httpx.TimeoutException):
            raise QrsError(Reason.TIMEOUT, f"no answer within {self._timeout:g} s") from None
        except (httpx.TransportError, OSError) as exc:
            # OSError: a TLS alert on the first read (the server refused the client certificate
            # after the handshake, as TLS 1.3 does) reaches us as ssl.SSLError, unwrapped.
            raise _transport_error(exc) from None
        except httpx.HTTPError as exc:  # anything else httpx finds wrong with the answer
            raise QrsError(Reason.QRS_ERROR, type(exc).__name__) from None
        if httpx.codes.is_success(status):
            return body
        detail = f"HTTP {status}"
        if status == httpx.codes.NOT_FOUND:
            raise QrsError(Reason.NOT_FOUND, detail)
        if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            raise QrsError(Reason.ACCESS_DENIED, detail)
        raise QrsError(Reason.QRS_ERROR, detail)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _tail(response: httpx.Response, max_bytes: int, whole: bool) -> bytes:
    """The body's last `max_bytes` bytes; with `whole`, the body if it fits (else QrsError)."""
    kept = bytearray()
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) > max_bytes:
            if whole:
                raise QrsError(Reason.QRS_ERROR, f"answer longer than {max_bytes} bytes")
            del kept[: len(kept) - max_bytes]
    return bytes(kept)


def _transport_error(exc: httpx.TransportError | OSError) -> QrsError:
    """A refused handshake on either side, another TLS failure, a connection that ended before
    any answer, or no connection at all."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return QrsError(Reason.SERVER_NOT_TRUSTED, cause.verify_message or "")
        if isinstance(cause, ssl.SSLEOFError):
            # Closed without a TLS alert: nothing that speaks TLS there, or it went away.
            return QrsError(Reason.UNREACHABLE, f"connection closed: {cause.reason or 'EOF'}")
        if isinstance(cause, ssl.SSLError):
            name = cause.reason or type(cause).__name__
            if name in REFUSED_ALERTS:
                return QrsError(Reason.CERTIFICATE_REFUSED, name)
            # e.g. WRONG_VERSION_NUMBER: something other than TLS answers on the port.
            return QrsError(Reason.TLS_ERROR, name)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ReadError | httpx.WriteError) and _reset(exc):
        # The handshake succeeded, then the connection was reset before any answer. That is how
        # a TLS 1.3 server's refusal of the client certificate often arrives: it judges the
        # certificate after the client's handshake ended, sends its alert and closes with the
        # request unread, and the reset can overtake the alert (most of the time when it
        # refuses at once). It cannot be told from a server that crashes there; a refusal is
        # by far the likelier. A clean close before answering is not one.
        return QrsError(
            Reason.CERTIFICATE_REFUSED, f"reset after the handshake: {type(exc).__name__}"
        )
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        return QrsError(Reason.UNREACHABLE, f"closed before answering: {type(exc).__name__}")
    return QrsError(Reason.UNREACHABLE, str(exc) or type(exc).__name__)


def _reset(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
