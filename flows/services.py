"""Start and stop real Apache Kafka and Redis on loopback, for tests and local use.

Why real servers: the integration tests and the load driver must exercise the
same broker and store that production uses. Each service runs in its own
temporary folder on a free 127.0.0.1 port, is awaited until it answers, and is
stopped by its own pid (process group) even when a test fails.

Kafka's jars come from Maven Central through `deploy/kafka/pom.xml` into
`deploy/kafka/lib/` once; later runs reuse them without touching the network.

Exception tree:
    ServiceError (RuntimeError)   a service could not be installed, started or reached
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = [
    "ChdbService",
    "KafkaService",
    "RedisService",
    "ServiceError",
    "ensure_kafka_jars",
    "free_port",
    "run_services_until_interrupted",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_DIR = Path(os.environ.get("ARRECON_KAFKA_DIR", REPO_ROOT / "deploy" / "kafka"))
KAFKA_START_TIMEOUT_S = 90.0
REDIS_START_TIMEOUT_S = 15.0


class ServiceError(RuntimeError):
    """A real service could not be prepared, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ensure_kafka_jars(kafka_dir: Path = KAFKA_DIR) -> Path:
    """Resolve the broker's jars with Maven once; return the lib folder."""
    lib = kafka_dir / "lib"
    if any(lib.glob("kafka_2.13-*.jar")):
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Kafka jars are missing and `mvn` is not installed")
    command = [mvn, "-q", "-B", "-f", str(kafka_dir / "pom.xml"), "dependency:copy-dependencies"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(lib.glob("kafka_2.13-*.jar")):
        raise ServiceError(f"resolving Kafka jars failed:\n{result.stdout}\n{result.stderr}")
    return lib


def _stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 20.0) -> None:
    """Terminate a service's whole process group, then kill it if it lingers."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class _Service:
    """Common start/stop plumbing; subclasses say how to launch and probe."""

    name = "service"

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"arrecon-{self.name}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def _launch(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
            start_new_session=True,
        )

    def _wait_until(self, ready: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited early; log:\n{self._tail_log()}")
            if ready():
                return
            time.sleep(0.2)
        raise ServiceError(f"{self.name} not ready after {timeout_s}s; log:\n{self._tail_log()}")

    def _tail_log(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        _stop_process(self.process)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> _Service:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class KafkaService(_Service):
    """A single-node KRaft broker+controller from the Maven-resolved jars."""

    name = "kafka"

    def __init__(self, workdir: Path | None = None, heap: str = "-Xms512m -Xmx1g") -> None:
        super().__init__(workdir)
        self.heap = heap
        self.broker_port = 0
        self.controller_port = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    def start(self) -> KafkaService:
        lib = ensure_kafka_jars()
        java = shutil.which("java")
        if java is None:
            raise ServiceError("java is not installed (a JRE 17+ is needed for Kafka)")
        self.broker_port, self.controller_port = free_port(), free_port()
        config = self._write_config()
        base = [java, *self.heap.split(), "-cp", f"{lib}/*"]
        base.append(f"-Dlog4j.configuration=file:{self._write_log4j()}")
        self._format_storage(base, config)
        self._launch([*base, "kafka.Kafka", str(config)])
        self._wait_until(self._answers, KAFKA_START_TIMEOUT_S)
        return self

    def _write_config(self) -> Path:
        template = (KAFKA_DIR / "server.properties.template").read_text()
        text = string.Template(template).substitute(
            broker_port=self.broker_port,
            controller_port=self.controller_port,
            log_dir=self.workdir / "data",
        )
        path = self.workdir / "server.properties"
        path.write_text(text)
        return path

    def _write_log4j(self) -> Path:
        path = self.workdir / "log4j.properties"
        path.write_text(
            "log4j.rootLogger=WARN, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\n"
        )
        return path

    def _format_storage(self, base: list[str], config: Path) -> None:
        cluster_id = _cluster_id()
        command = [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")

    def _answers(self) -> bool:
        if not _port_open(self.broker_port):
            return False
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        try:
            admin.list_topics(timeout=2)
        except Exception:  # KafkaException while the broker is still electing itself
            return False
        return True

    def create_topic(self, name: str, partitions: int = 4) -> None:
        """Create a topic and wait until the broker reports it."""
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(name, partitions, 1)])
        for future in futures.values():
            future.result(timeout=30)


class RedisService(_Service):
    """Debian's redis-server, no persistence unless asked."""

    name = "redis"

    def __init__(self, workdir: Path | None = None, persistent: bool = False) -> None:
        super().__init__(workdir)
        self.persistent = persistent
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisService:
        server = shutil.which("redis-server")
        if server is None:
            raise ServiceError("redis-server is not installed (Debian package redis-server)")
        self.port = free_port()
        persistence = ["--appendonly", "yes"]
        if not self.persistent:
            persistence = ["--save", "", "--appendonly", "no"]
        self._launch(
            [
                server,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                *persistence,
            ]
        )
        self._wait_until(self._answers, REDIS_START_TIMEOUT_S)
        return self

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False


@dataclass
class ChdbService:
    """chDB needs no server: this hands out clickhouse-connect clients on a folder.

    Only one process may open a chDB folder, so each service owns a fresh one.
    """

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="arrecon-chdb-")))

    @property
    def dsn(self) -> str:
        return f"chdb://{self.workdir}"

    def client(self) -> Any:
        import clickhouse_connect

        return clickhouse_connect.get_client(dsn=self.dsn)

    def stop(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def running(kafka: bool = True, redis: bool = True) -> Iterator[dict[str, str]]:
    """Start the requested services; yield their addresses; always stop them."""
    started: list[_Service] = []
    addresses: dict[str, str] = {}
    try:
        if kafka:
            broker = KafkaService().start()
            started.append(broker)
            addresses["kafka"] = broker.bootstrap
        if redis:
            store = RedisService().start()
            started.append(store)
            addresses["redis"] = store.url
        yield addresses
    finally:
        for service in reversed(started):
            service.stop()


def run_services_until_interrupted(kafka: bool = True, redis: bool = True) -> None:
    """Start services, print how to reach them, block until Ctrl-C."""
    with running(kafka=kafka, redis=redis) as addresses:
        for name, address in addresses.items():
            env_name = "ARRECON_KAFKA" if name == "kafka" else "ARRECON_REDIS"
            print(f"{name:6} {address}    export {env_name}={address}", flush=True)
        print("Ctrl-C stops them.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


def _cluster_id() -> str:
    """A random KRaft cluster id as Kafka's own `Uuid.randomUuid` makes it.

    Why: the id is passed as a command-line value, and one starting with "-"
    (1 in 32 of base64url ids) is read by the storage tool as an option; Kafka
    redraws those too.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
