"""``http.fetch``: one HTTP request, redirects followed by hand with every hop checked.

Allow-list entries are ``host``, ``host:port`` or ``*.domain``. For each hop
(the first URL and every redirect target) the scheme must be http or https, the
host must match an entry, and every address the host resolves to must be
public, unless that address itself is listed (``127.0.0.1:8080``): a listed
*name* that resolves to a private, loopback or link-local address is refused,
which stops DNS names pointed at internal services. The request then goes to
the address that was checked (the Host header and TLS server name stay the
host's), never to a second DNS answer: a name that rebinds between the check
and the connection does not reach an internal service. Proxies from the
environment are ignored.

The policy's timeout is one deadline for the whole call (every connect, every hop and
the whole body), not a limit per read that a server sending a byte at a time renews.
A redirect to another origin (scheme, host or port) loses the caller's
``Authorization``, ``Cookie`` and ``Proxy-Authorization`` headers, as browsers and
httpx do when they follow redirects themselves.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from pydantic import Field, JsonValue

from agentbus.interfaces.catalog.tools import Risk
from agentbus.interfaces.error_reply import ErrorCode
from agentbus.tool_executor.declaration import ToolArgs, ToolContext, ToolOutcome, tool
from agentbus.tool_executor.errors import Refused, ToolFailed

MAX_REDIRECTS = 5
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
"""Headers that go only to the origin the caller named."""
_SHOWN_HEADERS = ("content-type", "content-length", "location", "last-modified", "etag")


class FetchArgs(ToolArgs):
    url: str = Field(min_length=1, max_length=8000)
    method: str = Field(default="GET", pattern=r"^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)$")
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    body: str | None = Field(default=None, max_length=1_000_000)
    timeout: float | None = Field(default=None, gt=0)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _entry_matches(entry: str, host: str, port: int) -> bool:
    entry = entry.lower()
    want_port: int | None = None
    if entry.startswith("["):  # [::1]:8080
        bracket = entry.index("]")
        name, rest = entry[1:bracket], entry[bracket + 1 :]
        want_port = int(rest[1:]) if rest.startswith(":") else None
    elif entry.count(":") == 1:
        name, _, port_text = entry.partition(":")
        want_port = int(port_text)
    else:
        name = entry
    if want_port is not None and want_port != port:
        return False
    return fnmatch.fnmatchcase(host, name) if name.startswith("*.") else host == name


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


async def check_url(url: str, allowed: tuple[str, ...]) -> Address:
    """Refuse ``url`` unless its scheme, host, port and resolved addresses pass the policy;
    the address to connect to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"only http and https URLs are fetched, not {parts.scheme or 'none'!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise Refused(f"{url!r} has no host")
    if parts.username or parts.password:
        raise Refused("URLs with credentials are not fetched; pass an Authorization header")
    try:
        port = parts.port or _default_port(parts.scheme)
    except ValueError:
        raise Refused(f"{url!r} has an invalid port") from None
    if not any(_entry_matches(entry, host, port) for entry in allowed):
        raise Refused(f"host {host}:{port} is not on this caller's allow-list", host=host)
    if (literal := _literal(host)) is not None:
        return literal  # an IP literal that the policy lists explicitly: nothing to resolve
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ToolFailed(f"cannot resolve {host}: {exc}", code=ErrorCode.UPSTREAM) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        listed = any(_entry_matches(entry, str(address), port) for entry in allowed)
        if not address.is_global and not listed:
            raise Refused(
                f"{host} resolves to the non-public address {address}; list the address itself "
                "in the policy's hosts to allow it",
                host=host,
                address=str(address),
            )
    if not infos:
        raise ToolFailed(f"{host} has no addresses", code=ErrorCode.UPSTREAM)
    return ipaddress.ip_address(infos[0][4][0])


def pinned_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    address: Address,
    headers: dict[str, str],
    body: str | None,
) -> httpx.Request:
    """A request for ``url`` sent to ``address``: the URL's host in the Host header and, for
    https, as the TLS server name (which the certificate is checked against)."""
    parts = urlsplit(url)
    port = parts.port or _default_port(parts.scheme)
    host = f"[{address}]" if address.version == 6 else str(address)
    target = urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, ""))
    kept = {k: v for k, v in headers.items() if k.lower() != "host"}
    extensions = {}
    if parts.scheme == "https" and _literal(parts.hostname or "") is None:
        extensions["sni_hostname"] = parts.hostname or ""
    return client.build_request(
        method,
        target,
        headers={**kept, "Host": parts.netloc},
        content=body,
        extensions=extensions,
    )


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or _default_port(parts.scheme)
    except ValueError:
        port = -1  # check_url refuses it
    return parts.scheme, (parts.hostname or "").lower(), port


def _headers_for(url: str, first: str, headers: dict[str, str]) -> dict[str, str]:
    """The caller's headers for a hop to ``url``: credentials only to the first origin."""
    if _origin(url) == _origin(first):
        return headers
    return {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


@tool("http.fetch", risk=Risk.MEDIUM)
async def fetch(args: FetchArgs, ctx: ToolContext) -> ToolOutcome:
    """Fetch a URL on the caller's host allow-list (checked again after every redirect),
    within one deadline (the policy's timeout, or a shorter ``timeout``)."""
    timeout = ctx.timeout(args.timeout)
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(args, ctx, timeout)
    except TimeoutError:
        raise ToolFailed(
            f"{args.method} {args.url} did not finish within {timeout:.1f}s (connecting, "
            "redirects and the whole body); raise the timeout or fetch something smaller",
            code=ErrorCode.TIMEOUT,
        ) from None


async def _fetch(args: FetchArgs, ctx: ToolContext, timeout: float) -> ToolOutcome:
    url, method, body = args.url, args.method, args.body
    hops: list[str] = []
    # No kept-alive connections: each hop connects anew to the address checked for its
    # host, never reusing one opened (and TLS-verified) for another host on that address.
    async with httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=timeout,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            address = await check_url(url, ctx.policy.hosts)
            hops.append(url)
            try:
                headers = _headers_for(url, args.url, args.headers)
                request = pinned_request(client, method, url, address, headers, body)
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise ToolFailed(f"{method} {url} failed: {exc}", code=ErrorCode.UPSTREAM) from None
            try:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    url = urljoin(url, location)
                    if response.status_code == 303 or (
                        response.status_code in (301, 302) and method == "POST"
                    ):
                        method, body = "GET", None
                    continue
                kept = bytearray()
                truncated = False
                async for chunk in response.aiter_bytes():
                    room = ctx.policy.max_output - len(kept)
                    if len(chunk) > room:
                        kept.extend(chunk[:room])
                        truncated = True
                        break
                    kept.extend(chunk)
            finally:
                await response.aclose()
            shown = {k: v for k, v in response.headers.items() if k.lower() in _SHOWN_HEADERS}
            return ToolOutcome(
                kept.decode(response.encoding or "utf-8", errors="replace"),
                truncated=truncated,
                data={
                    "status": response.status_code,
                    "url": url,
                    "headers": dict[str, JsonValue](shown),
                    "redirects": list[JsonValue](hops[:-1]),
                },
            )
    raise ToolFailed(f"more than {MAX_REDIRECTS} redirects from {args.url}")


TOOLS = (fetch,)
