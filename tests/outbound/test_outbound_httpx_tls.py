"""`HttpxClient` over real TLS on 127.0.0.1: the connection is pinned to the vetted address while
SNI and certificate verification keep the name (issue 4, DNS rebinding between check and connect).

A throwaway CA and a leaf certificate for `cimd.example` are minted with `cryptography`; the fake
resolver maps the name to 127.0.0.1, which only the development policy allows.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import attrs
import pytest
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSListener, TLSStream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mcp_core.adapters.http_client import HttpxClient, Resolver
from mcp_core.core.http.ssrf import OutboundPolicy
from mcp_core.ports.http_client import OutboundFailed, OutboundRefused

pytestmark = pytest.mark.anyio


@attrs.frozen
class Pki:
    client: ssl.SSLContext
    server: ssl.SSLContext


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def mint(tmp: Path, dns_name: str) -> Pki:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp / "leaf.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    client = ssl.create_default_context(cafile=str(tmp / "ca.pem"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "leaf.pem", tmp / "leaf.key")
    return Pki(client=client, server=server)


@attrs.define
class TlsServer:
    port: int
    server_names: list[str | None] = attrs.Factory(list)
    requests: list[bytes] = attrs.Factory(list)


@asynccontextmanager
async def tls_server(context: ssl.SSLContext, body: bytes) -> AsyncIterator[TlsServer]:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server = TlsServer(port=tcp.extra(SocketAttribute.local_port))

    def remember_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        server.server_names.append(name)

    context.sni_callback = remember_sni  # type: ignore[assignment]
    listener = TLSListener(tcp, context, standard_compatible=False, handshake_timeout=5)
    reply = (
        f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )

    async def handle(stream: TLSStream) -> None:
        async with stream:
            data = b""
            with anyio.move_on_after(5):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
                server.requests.append(data)
                await stream.send(reply)

    async def serve() -> None:
        # A failed handshake (the client refusing our certificate) must not end the server.
        await listener.serve(handle)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def resolver_to_loopback(names: Sequence[str]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in names:
            raise OSError(f"unknown {host}")
        return ["127.0.0.1"]

    return resolve


async def test_https_is_pinned_to_the_vetted_ip_with_sni_and_certificate_for_the_name(
    tmp_path: Path,
) -> None:
    pki = mint(tmp_path, "cimd.example")
    with anyio.fail_after(10):
        async with tls_server(pki.server, b'{"ok": true}') as server:
            client = HttpxClient(
                OutboundPolicy.development(),
                resolver=resolver_to_loopback(["cimd.example"]),
                verify=pki.client,
            )
            result = await client.get(f"https://cimd.example:{server.port}/client.json")
    assert result.body == b'{"ok": true}'
    assert result.final_url == f"https://cimd.example:{server.port}/client.json"
    assert server.server_names == ["cimd.example"]
    assert f"host: cimd.example:{server.port}".encode() in server.requests[0].lower()


async def test_certificate_for_another_name_fails(tmp_path: Path) -> None:
    pki = mint(tmp_path, "cimd.example")
    with anyio.fail_after(10):
        async with tls_server(pki.server, b"x") as server:
            client = HttpxClient(
                OutboundPolicy.development(),
                resolver=resolver_to_loopback(["other.example"]),
                verify=pki.client,
            )
            with pytest.raises(OutboundFailed):
                await client.get(f"https://other.example:{server.port}/")
    assert server.requests == []


async def test_production_policy_refuses_the_same_name_before_the_handshake(
    tmp_path: Path,
) -> None:
    pki = mint(tmp_path, "cimd.example")
    with anyio.fail_after(10):
        async with tls_server(pki.server, b"x") as server:
            client = HttpxClient(resolver=resolver_to_loopback(["cimd.example"]), verify=pki.client)
            with pytest.raises(OutboundRefused, match="loopback"):
                await client.get(f"https://cimd.example:{server.port}/")
            await anyio.sleep(0.05)
    assert server.server_names == []
