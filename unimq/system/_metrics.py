"""Queue figures as Prometheus/OpenMetrics metrics (prometheus_client).

One collector reads every queue visible in this IPC namespace (the same
listing as ``unimq ls``: /proc/sysvipc/msg and the mounted mqueue fs), the
queues named by URL (any backend, e.g. memory:// in this process), and the
kernel's queue limits, each time it is scraped. Nothing is cached.
"""

from __future__ import annotations

import logging
import pwd
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from unimq._errors import UnimqError
from unimq._message import QueueStat

__all__ = [
    "MetricsServer",
    "QueueCollector",
    "metrics_json",
    "metrics_text",
    "parse_listen",
    "serve_metrics",
]

_log = logging.getLogger("unimq.metrics")

LABELS = ["kind", "url", "owner"]

#: (metric name, help, QueueStat field); timestamps become seconds since the epoch.
_QUEUE_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("unimq_queue_messages", "Messages queued now.", "messages"),
    ("unimq_queue_bytes", "Bytes queued now.", "bytes"),
    (
        "unimq_queue_capacity_messages",
        "How many messages fit (POSIX mq_maxmsg).",
        "max_messages",
    ),
    ("unimq_queue_capacity_bytes", "Byte capacity (SysV msg_qbytes).", "max_bytes"),
    (
        "unimq_queue_max_message_size_bytes",
        "Largest single message the queue accepts.",
        "max_message_size",
    ),
    (
        "unimq_queue_last_send_timestamp_seconds",
        "When a message was last sent (SysV msg_stime).",
        "last_send_time",
    ),
    (
        "unimq_queue_last_receive_timestamp_seconds",
        "When a message was last received (SysV msg_rtime).",
        "last_receive_time",
    ),
    (
        "unimq_queue_last_change_timestamp_seconds",
        "Last change (SysV msg_ctime; POSIX: the mqueue file's mtime, set by send and receive).",
        "last_change_time",
    ),
)


def _owner(uid: int | None) -> str:
    if uid is None:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _value(st: QueueStat, field: str) -> float | None:
    value = getattr(st, field)
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    if field == "messages" and value < 0:  # POSIX queue that could not be opened
        return None
    return float(value)


def _with_capacity(st: QueueStat) -> QueueStat:
    """SysV listing rows lack msg_qbytes: ask the queue itself (IPC_STAT) when we may."""
    if st.kind != "sysv" or st.max_bytes is not None or st.key is None or st.key == 0:
        return st
    import unimq

    try:
        with unimq.open(st.url, access="r") as q:
            full = q.stat()
    except (UnimqError, OSError) as exc:  # removed meanwhile, or no read permission
        _log.debug("cannot stat %s for its capacity: %s", st.url, exc)
        return st
    except Exception as exc:  # a failing backend must not take the whole scrape down
        _log.warning("cannot stat %s for its capacity: %s: %s", st.url, type(exc).__name__, exc)
        return st
    return st.model_copy(update={"max_bytes": full.max_bytes})


class QueueCollector(Collector):
    """A prometheus_client collector of every visible queue, listed URLs and the limits.

    :param urls: extra queue URLs to stat on every scrape (any backend).
    """

    def __init__(self, urls: Iterable[str] = ()) -> None:
        self.urls = list(urls)

    def _listing(self, kind: str) -> tuple[list[QueueStat], bool]:
        from unimq import system

        with warnings.catch_warnings():
            warnings.simplefilter("error", system.MqueueNotMountedWarning)
            try:
                return system.list_queues(kind), True
            except system.MqueueNotMountedWarning:
                return [], False
            except Exception as exc:  # a broken backend must not take the whole scrape down
                _log.warning("cannot list %s queues: %s: %s", kind, type(exc).__name__, exc)
                return [], False

    def stats(self) -> tuple[list[QueueStat], dict[str, bool]]:
        """Every queue's figures now, and which listings worked (``{"sysv": True, ...}``)."""
        import unimq

        found: list[QueueStat] = []
        up: dict[str, bool] = {}
        for kind in ("sysv", "posix"):
            stats, up[kind] = self._listing(kind)
            found += [_with_capacity(st) for st in stats]
        seen = {st.url for st in found}
        for url in self.urls:
            try:
                with unimq.open(url, access="r") as q:
                    st = q.stat()
            except Exception as exc:  # one bad URL must not take the whole scrape down
                _log.warning("cannot read %s for metrics: %s: %s", url, type(exc).__name__, exc)
                up[url] = False
                continue
            up[url] = True
            if st.url not in seen:
                found.append(st)
                seen.add(st.url)
        return found, up

    def collect(self) -> Iterator[Metric]:
        from unimq import system

        stats, up = self.stats()
        families = {
            name: GaugeMetricFamily(name, text, labels=LABELS) for name, text, _ in _QUEUE_GAUGES
        }
        for st in stats:
            labels = [st.kind, st.url, _owner(st.uid)]
            for name, _, field in _QUEUE_GAUGES:
                value = _value(st, field)
                if value is not None:
                    families[name].add_metric(labels, value)
        yield from families.values()

        listing = GaugeMetricFamily(
            "unimq_listing_up",
            "1 if this source could be read on this scrape (posix: an mqueue fs is mounted).",
            labels=["source"],
        )
        for source, ok in up.items():
            listing.add_metric([source], 1.0 if ok else 0.0)
        yield listing

        count = GaugeMetricFamily("unimq_queues", "Queues visible here.", labels=["kind"])
        for kind in ("sysv", "posix"):
            count.add_metric([kind], float(sum(1 for st in stats if st.kind == kind)))
        yield count

        lim = system.limits()
        limit = GaugeMetricFamily(
            "unimq_limit", "The kernel's queue limits (sysctls, RLIMIT_MSGQUEUE).", labels=["name"]
        )
        for name, value in lim.sysctls().items():
            if value is not None:
                limit.add_metric([name], float(value))
        limit.add_metric(["RLIMIT_MSGQUEUE.soft"], float(lim.rlimit_msgqueue_soft))
        limit.add_metric(["RLIMIT_MSGQUEUE.hard"], float(lim.rlimit_msgqueue_hard))
        yield limit


def _registry(urls: Iterable[str]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(urls))
    return registry


def metrics_text(urls: Iterable[str] = ()) -> str:
    """The metrics in Prometheus text format, as a scrape would return them now.

    Also suits node_exporter's textfile collector (write it to a ``.prom`` file).
    """
    return generate_latest(_registry(urls)).decode()


def metrics_json(urls: Iterable[str] = ()) -> dict[str, Any]:
    """The same figures as one JSON-ready dict (for log shippers): ``time``,
    ``queues`` (one dict per queue, metric names without the ``unimq_queue_``
    prefix), ``up`` and ``limits``."""
    from unimq import system

    stats, up = QueueCollector(urls).stats()
    queues = []
    for st in stats:
        row: dict[str, Any] = {"kind": st.kind, "url": st.url, "owner": _owner(st.uid)}
        value: float | int | None
        for name, _, field in _QUEUE_GAUGES:
            value = _value(st, field)
            if value is not None and "timestamp" not in name:
                value = int(value)
            row[name.removeprefix("unimq_queue_")] = value
        queues.append(row)
    lim = system.limits()
    limits: dict[str, Any] = dict(lim.sysctls())
    limits["RLIMIT_MSGQUEUE.soft"] = lim.rlimit_msgqueue_soft
    limits["RLIMIT_MSGQUEUE.hard"] = lim.rlimit_msgqueue_hard
    return {"time": time.time(), "queues": queues, "up": up, "limits": limits}


def parse_listen(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"`` or ``":9464"`` (all addresses) -> (host, port).

    :raises ValueError: for anything else, saying what is expected.
    """
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(
            f"--listen must be HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464), got {address!r}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port_text)


class MetricsServer:
    """A running metrics endpoint (``/metrics``); close it with :meth:`close` or ``with``."""

    def __init__(self, address: str, urls: Sequence[str] = ()) -> None:
        host, port = parse_listen(address)
        self._server, self._thread = start_http_server(port, host, registry=_registry(urls))
        self.host = host
        self.port: int = self._server.server_port
        self._lock = threading.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        """The scrape URL, e.g. ``http://127.0.0.1:9464/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and join the server thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_metrics(address: str = "127.0.0.1:9464", urls: Sequence[str] = ()) -> MetricsServer:
    """Serve the metrics over HTTP at ``address`` (port 0 picks a free port) in a thread.

    :raises ValueError: for a malformed address.
    :raises OSError: if the address cannot be bound (in use, not local).
    """
    return MetricsServer(address, urls)
