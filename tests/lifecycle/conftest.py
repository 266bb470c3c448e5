"""Fixtures for the lifecycle suite: backend readiness probes and metrics scraping."""

from __future__ import annotations

import contextlib
import functools
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import unimq


@functools.cache
def backend_ready(kind: str) -> str | None:
    """None if ``kind`` creates, sends, receives and removes a real queue here;
    otherwise why not (e.g. the backend is not yet on the core's contract)."""
    from tests.conftest import new_url

    url = new_url(kind)
    options = {"max_messages": 2, "max_message_size": 16} if kind == "posix" else {}
    try:
        with unimq.open(url, create=True, exclusive=True, **options) as q:
            try:
                q.send(b"probe", timeout=0)
                q.receive(timeout=0)
            finally:
                q.remove()
    except Exception as exc:  # any failure: the backend cannot be used by these tests
        with contextlib.suppress(Exception):
            unimq.remove(url, missing_ok=True)
        return f"the {kind} backend does not work here yet: {type(exc).__name__}: {exc}"
    return None


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a scrape, keyed by (name, sorted labels), via prometheus_client's parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        body: bytes = resp.read()
    return body.decode()


def sample(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The one sample of ``metric`` whose labels include ``labels``."""
    found = [
        v
        for (n, ls), v in samples.items()
        if n == metric and all(dict(ls).get(k) == want for k, want in labels.items())
    ]
    assert len(found) <= 1, (metric, labels, found)
    return found[0] if found else None
