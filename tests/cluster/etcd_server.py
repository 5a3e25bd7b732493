"""Real etcd servers for the cluster tests and the cluster benchmark.

Each :class:`EtcdServer` is an ``etcd`` process (Debian's ``etcd-server``, installed by ``just toolchains``)
with its own temporary data directory and free loopback ports. It can be stopped and started again on the
same ports and data, which is how the tests take etcd away from running gateways and give it back.
:class:`TcpCutter` sits between gateways and etcd when a test needs to cut one gateway off while etcd keeps
running for everybody else (a network partition; a stopped etcd cannot be compacted).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.server_process import free_port

ETCD_MISSING = (
    "the `etcd` binary is not on PATH: the cluster tests need a real etcd server. "
    "Install it with `just toolchains` (Debian packages etcd-server and etcd-client)."
)


def etcd_binary() -> str:
    path = shutil.which("etcd")
    if path is None:
        raise RuntimeError(ETCD_MISSING)
    return path


@dataclass
class Tls:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def cert(self, who: str) -> Path:
        return self.directory / f"{who}.pem"

    def key(self, who: str) -> Path:
        return self.directory / f"{who}-key.pem"

    @classmethod
    def make(cls, directory: Path) -> Tls:
        if shutil.which("openssl") is None:
            raise RuntimeError("openssl is needed to make test certificates (apt-get install openssl)")
        directory.mkdir(parents=True, exist_ok=True)
        tls = cls(directory)

        def run(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca-key.pem", "-out", "ca.pem")
        for who, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                         ("client", "extendedKeyUsage=clientAuth")):
            (directory / f"{who}.ext").write_text(ext + "\n")
            run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
                "-keyout", f"{who}-key.pem", "-out", f"{who}.csr")
            run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                "-days", "2", "-extfile", f"{who}.ext", "-out", f"{who}.pem")
        return tls


@dataclass
class EtcdServer:
    """One single-member etcd cluster on loopback."""

    data_dir: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    tls: Tls | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.endpoint}"

    def start(self, timeout: float = 20.0) -> None:
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        args = [
            etcd_binary(), "--name", "test", "--data-dir", str(self.data_dir / "member-data"),
            "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"test={peer_url}", "--logger", "zap", "--log-level", "error",
            "--log-outputs", str(self.data_dir / "etcd.log"),
        ]
        if self.tls:
            args += ["--cert-file", str(self.tls.cert("server")), "--key-file", str(self.tls.key("server")),
                     "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.data_dir / "etcd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"etcd exited with {self.process.returncode}: {log}")
            if self.healthy():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd on {self.endpoint} did not become healthy within {timeout} s")

    def healthy(self) -> bool:
        try:
            response = self.etcdctl("endpoint", "health", check=False, timeout=2)
        except subprocess.TimeoutExpired:
            return False
        return response.returncode == 0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def etcdctl(self, *args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        """Run the real ``etcdctl`` against this server (what an operator would do)."""
        command = [shutil.which("etcdctl") or "etcdctl", "--endpoints", self.client_url, "--dial-timeout", "1s"]
        if self.tls:
            command += ["--cacert", str(self.tls.ca), "--cert", str(self.tls.cert("client")),
                        "--key", str(self.tls.key("client"))]
        env = {**os.environ, "ETCDCTL_API": "3"}
        result = subprocess.run(command + list(args), capture_output=True, text=True, timeout=timeout, env=env,
                                check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def enable_gateway_auth(self, user: str = "gw", password: str = "gwpw") -> None:
        """Turn etcd's auth on, with a root user (password ``rootpw``) and ``user`` holding read-write on
        the gateway's prefix only, as an operator would set up a cluster."""
        self.etcdctl("user", "add", "root", "--new-user-password", "rootpw")
        self.etcdctl("role", "add", "gateway")
        self.etcdctl("role", "grant-permission", "gateway", "--prefix=true", "readwrite", "/eventgateway/v1/")
        self.etcdctl("user", "add", user, "--new-user-password", password)
        self.etcdctl("user", "grant-role", user, "gateway")
        self.etcdctl("auth", "enable")

    def revision(self) -> int:
        import json

        out = self.etcdctl("endpoint", "status", "-w", "json").stdout
        return int(json.loads(out)[0]["Status"]["header"]["revision"])

    def compact(self) -> int:
        """Compact the history up to the current revision; returns that revision."""
        revision = self.revision()
        self.etcdctl("compact", str(revision))
        return revision


def new_etcd_server(tls: bool = False) -> EtcdServer:
    directory = Path(tempfile.mkdtemp(prefix="eg-etcd-"))
    server = EtcdServer(data_dir=directory, tls=Tls.make(directory / "tls") if tls else None)
    server.start()
    return server


def remove_etcd_server(server: EtcdServer) -> None:
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


class TcpCutter:
    """A loopback TCP relay to etcd that a test can cut and heal: a network partition on one machine.

    While cut, open connections are closed and new ones are refused, exactly what a gateway sees when the
    network to etcd goes away; etcd itself keeps running for the test to write to and compact.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def heal(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, upstream_writer}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
        self._writers -= {client_writer, upstream_writer}
