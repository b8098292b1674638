"""Real network boundaries for the tests: Linux network namespaces joined by veth pairs,
a delaying TCP proxy (this kernel has no `tc netem`), and a certificate authority.

The central site lives in the test's own (root) namespace; each "cloud" is a namespace of
its own, joined to it by a veth pair on a /24 of its own. Needs root and iproute2.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def ip(*args: str, namespace: str | None = None) -> None:
    inside = ["ip", "netns", "exec", namespace] if namespace else []
    command = [*inside, "ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def namespaces_work() -> str | None:
    """None when namespaces can be made here, or the reason they cannot."""
    probe = f"mri-probe-{uuid.uuid4().hex[:6]}"
    try:
        ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace") if hasattr(exc, "stderr") else str(exc)
        return f"cannot create a network namespace (root and iproute2 needed): {detail.strip()}"
    ip("netns", "del", probe)
    return None


@dataclass
class Cloud:
    """A network namespace joined to the root namespace by a veth pair."""

    name: str
    namespace: str
    root_link: str
    subnet: int

    @property
    def central_address(self) -> str:
        """The central site's address as seen from this cloud (the root end of the veth)."""
        return f"10.231.{self.subnet}.1"

    @property
    def own_address(self) -> str:
        return f"10.231.{self.subnet}.2"

    @classmethod
    def create(cls, name: str, subnet: int) -> Cloud:
        tag = uuid.uuid4().hex[:5]
        cloud = cls(name, f"mri-{name}-{tag}", f"mri{subnet}{tag}", subnet)
        peer = f"{cloud.root_link}p"
        ip("netns", "add", cloud.namespace)
        ip("link", "add", cloud.root_link, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", cloud.namespace)
        ip("addr", "add", f"{cloud.central_address}/24", "dev", cloud.root_link)
        ip("link", "set", cloud.root_link, "up")
        ip("addr", "add", f"{cloud.own_address}/24", "dev", peer, namespace=cloud.namespace)
        ip("link", "set", peer, "up", namespace=cloud.namespace)
        ip("link", "set", "lo", "up", namespace=cloud.namespace)
        return cloud

    def cut(self) -> None:
        """Take the link down: packets are dropped, connections hang (no reset), as when
        a link between clouds fails."""
        ip("link", "set", self.root_link, "down")

    def restore(self) -> None:
        ip("link", "set", self.root_link, "up")

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside this cloud."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("link", "del", self.root_link)
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("netns", "del", self.namespace)


class DelayProxy:
    """Forwards TCP from (listen_host, listen_port) to 127.0.0.1:target_port, delivering
    every chunk `one_way_s` later in each direction, so the round trip gains 2 * one_way_s
    without limiting throughput. Runs its own event loop in a thread."""

    def __init__(self, listen_host: str, listen_port: int, target_port: int, one_way_s: float):
        self.listen = (listen_host, listen_port)
        self.target_port = target_port
        self.one_way_s = one_way_s
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError(f"the proxy on {self.listen} did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, *self.listen)
        )
        self.ready.set()
        self.loop.run_forever()

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w),
            return_exceptions=True,
        )  # fmt: skip

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                if not chunk:
                    writer.close()
                    return
                writer.write(chunk)
                await writer.drain()

        delivery = asyncio.ensure_future(deliver())
        try:
            while chunk := await reader.read(65536):
                queue.put_nowait((self.loop.time() + self.one_way_s, chunk))
        finally:
            queue.put_nowait((self.loop.time() + self.one_way_s, b""))
            with contextlib.suppress(Exception):
                await delivery

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self.thread.join(timeout=10)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path  # an authority that did not sign the server's certificate


def make_certificates(folder: Path, addresses: list[str]) -> Certificates:
    """A CA, a server certificate for `addresses` (IP SANs) signed by it, and a second CA."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.crt"),
                "-subj", f"/CN=mri test {name}")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(folder / "redis.key"),
            "-out", str(folder / "redis.csr"), "-subj", "/CN=central redis")  # fmt: skip
    sans = ",".join(f"IP:{address}" for address in addresses)
    (folder / "san.ext").write_text(f"subjectAltName={sans}\n")
    openssl("x509", "-req", "-in", str(folder / "redis.csr"), "-CA", str(folder / "ca.crt"),
            "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-days", "2",
            "-out", str(folder / "redis.crt"), "-extfile", str(folder / "san.ext"))  # fmt: skip
    return Certificates(
        folder / "ca.crt", folder / "redis.crt", folder / "redis.key", folder / "other-ca.crt"
    )


@contextlib.contextmanager
def link_cut(cloud: Cloud) -> Iterator[None]:
    cloud.cut()
    try:
        yield
    finally:
        cloud.restore()
