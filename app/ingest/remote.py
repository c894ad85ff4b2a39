"""Images by reference: which URLs may be fetched (an allowlist, never private addresses) and one bounded fetch.

Fetching goes through fsspec (s3fs, gcsfs, aiohttp for http(s)). Only workers and the label page's image proxy
call `fetch_remote_image`; the ingest request path only stores the reference.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from app.core.config import Settings

REMOTE_SCHEMES = ("s3", "gs", "https", "http")
DEFAULT_PORTS = {"https": 443, "http": 80}
MAX_REDIRECTS = 5
READ_CHUNK = 256 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
FETCH_OFF = "remote image fetching is off: HARDCASE_REMOTE_IMAGE_ALLOWLIST is empty"


class RemoteRefused(Exception):
    """This reference could not be fetched; the message is the item's reason."""


class RemoteForbidden(RemoteRefused):
    """Settings forbid fetching this reference (not allowlisted, a private address)."""


@dataclass(frozen=True)
class Source:
    scheme: str
    location: str  # bucket, or host:port
    path_prefix: str = ""


def _source_of(url: str) -> Source | None:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        return None
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        return None
    if not host:
        return None
    location = host if scheme in ("s3", "gs") else f"{host}:{port or DEFAULT_PORTS[scheme]}"
    return Source(scheme, location, parts.path)


def is_remote_reference(uri: str | None) -> bool:
    return bool(uri) and urlsplit(uri).scheme.lower() in REMOTE_SCHEMES


def parse_allowlist(text: str) -> list[Source]:
    entries = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    return [source for source in map(_source_of, entries) if source is not None]


def refusal(url: str, settings: Settings) -> str | None:
    """Why `url` may not be fetched, decided without the network (scheme, allowlist); None: it may be tried."""
    source = _source_of(url)
    if source is None:
        return f"{url[:200]!r} is not an s3://, gs://, https:// or http:// reference"
    allowlist = parse_allowlist(settings.remote_image_allowlist)
    if not allowlist:
        return FETCH_OFF
    for entry in allowlist:
        if (entry.scheme, entry.location) == (
            source.scheme,
            source.location,
        ) and source.path_prefix.startswith(entry.path_prefix):
            return None
    return f"{url[:200]} is not on the allowlist (HARDCASE_REMOTE_IMAGE_ALLOWLIST)"


def internal_address(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_addresses(host: str, addresses: list[str], settings: Settings) -> None:
    if not addresses:
        raise RemoteRefused(f"host {host} does not resolve")
    if settings.remote_allow_private:
        return
    for ip in addresses:
        if internal_address(ip):
            raise RemoteForbidden(
                f"host {host} resolves to {ip}, a private, loopback or link-local address "
                "(HARDCASE_REMOTE_ALLOW_PRIVATE is off)"
            )


def fetch_remote_image(url: str, settings: Settings) -> bytes:
    """The referenced bytes, at most `max_image_bytes`, within `remote_fetch_timeout_s`; else RemoteRefused."""
    reason = refusal(url, settings)
    if reason is not None:
        raise RemoteForbidden(reason)
    scheme = urlsplit(url).scheme.lower()
    try:
        if scheme in ("http", "https"):
            return _fetch_http(url, settings)
        return _fetch_object(url, scheme, settings)
    except RemoteRefused:
        raise
    except FileNotFoundError as exc:
        raise RemoteRefused(f"{url[:200]} was not found") from exc
    except PermissionError as exc:
        raise RemoteRefused(f"access to {url[:200]} was denied") from exc
    except TimeoutError as exc:
        raise RemoteRefused(
            f"fetching {url[:200]} took longer than {settings.remote_fetch_timeout_s:g} s"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - botocore, aiohttp and gcsfs raise their own trees
        cause = exc.__cause__ if isinstance(exc.__cause__, RemoteRefused) else None
        if cause is not None:
            raise cause from exc
        raise RemoteRefused(f"fetching {url[:200]} failed: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _too_big(size: int, settings: Settings) -> RemoteRefused:
    return RemoteRefused(f"image is {size} bytes; the limit is {settings.max_image_bytes}")


# --- object storage -----------------------------------------------------------------------------------------


def object_filesystem(scheme: str, settings: Settings):
    timeout = settings.remote_fetch_timeout_s
    if scheme == "s3":
        import s3fs

        client_kwargs = {"region_name": settings.s3_region} if settings.s3_region else {}
        return s3fs.S3FileSystem(
            anon=settings.s3_anonymous,
            key=settings.s3_access_key_id or None,
            secret=settings.s3_secret_access_key or None,
            endpoint_url=settings.s3_endpoint_url or None,
            client_kwargs=client_kwargs,
            config_kwargs={
                "connect_timeout": timeout,
                "read_timeout": timeout,
                "retries": {"max_attempts": 1},
            },
        )
    import gcsfs

    return gcsfs.GCSFileSystem(
        token=settings.gcs_token or None,
        endpoint_url=settings.gcs_endpoint_url or None,
        requests_timeout=timeout,
    )


def _fetch_object(url: str, scheme: str, settings: Settings) -> bytes:
    fs = object_filesystem(scheme, settings)
    path = url.split("://", 1)[1]
    size = fs.info(path).get("size") or 0
    if size > settings.max_image_bytes:
        raise _too_big(size, settings)
    data = fs.cat_file(path)
    if len(data) > settings.max_image_bytes:
        raise _too_big(len(data), settings)
    return data


# --- http(s): every hop (redirects too) is checked against the allowlist, every connection's addresses too --


def _fetch_http(url: str, settings: Settings) -> bytes:
    import aiohttp  # the [storage] extra: imported only when a reference is fetched
    from fsspec.asyn import sync
    from fsspec.implementations.http import HTTPFileSystem, HTTPStreamFile

    async def check_hop(session, context, params) -> None:
        hop = str(params.url)
        reason = refusal(hop, settings)
        if reason is not None:
            raise RemoteForbidden(f"redirected to {hop[:200]}: {reason}")
        host = params.url.host or ""
        infos = await asyncio.get_running_loop().getaddrinfo(host, params.url.port, type=socket.SOCK_STREAM)
        check_addresses(host, [info[4][0] for info in infos], settings)

    async def client(**_):
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(check_hop)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=_checked_resolver(settings), use_dns_cache=False),
            trace_configs=[trace],
            timeout=aiohttp.ClientTimeout(total=settings.remote_fetch_timeout_s),
        )

    fs = HTTPFileSystem(get_client=client, skip_instance_cache=True)
    session = sync(fs.loop, fs.set_session)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            # Redirects are followed here, not by aiohttp, so that every hop meets the same checks.
            stream = HTTPStreamFile(fs, url, session=session, loop=fs.loop, allow_redirects=False)
            try:
                if stream.r.status in REDIRECTS and stream.r.headers.get("Location"):
                    url = urljoin(url, stream.r.headers["Location"])
                    continue
                return _read_bounded(stream, settings)
            finally:
                stream.close()
        raise RemoteRefused(f"{url[:200]} redirected more than {MAX_REDIRECTS} times")
    except aiohttp.ClientResponseError as exc:
        raise RemoteRefused(f"{url[:200]} answered HTTP {exc.status}") from exc
    finally:
        sync(fs.loop, session.close)


def _read_bounded(stream, settings: Settings) -> bytes:
    """A streaming GET: the length header is checked first, then at most the limit (+1) is read."""
    declared = int(stream.r.headers.get("Content-Length") or 0)
    if declared > settings.max_image_bytes:
        raise _too_big(declared, settings)
    chunks, size = [], 0
    while chunk := stream.read(READ_CHUNK):  # a read returns what has arrived, not necessarily all
        chunks.append(chunk)
        size += len(chunk)
        if size > settings.max_image_bytes:
            raise RemoteRefused(f"image is larger than the limit of {settings.max_image_bytes} bytes")
    return b"".join(chunks)


def _checked_resolver(settings: Settings):
    """Checks the addresses a connection is about to use (not a second lookup DNS could answer differently)."""
    import aiohttp

    class CheckedResolver(aiohttp.ThreadedResolver):
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
            results = await super().resolve(host, port, family)
            check_addresses(host, [r["host"] for r in results], settings)
            return results

    return CheckedResolver()
