"""Write one run's results into the Benchmarks page, so every figure on it
comes from the same run.

    python -m bench.docs bench-results/bench-<time>.json docs/benchmarks.md

``python -m bench.run --docs docs/benchmarks.md`` does it at the end of a run.
The page marks each generated table with ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; the text between the markers is replaced, the rest
of the page is left as written.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Row = Sequence[str]


def table(header: Row, rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _k(value: float) -> str:
    return f"{value / 1000:,.0f}"


def _x(value: float) -> str:
    return f"{value:.2f}x"


UNIMQ = ("unimq posix", "unimq sysv")


def throughput(r: dict[str, Any]) -> str:
    sizes = list(r["throughput"])
    names = sorted(r["throughput"][sizes[0]], key=lambda n: -r["throughput"][sizes[0]][n])
    rows = []
    for name in names:
        cells = [_k(r["throughput"][size][name]) for size in sizes]
        if name in UNIMQ:
            rows.append([f"**{name}**", *(f"**{c}**" for c in cells)])
        else:
            rows.append([name, *cells])
    return table(["thousand msgs/s", *(_size(s) for s in sizes)], rows)


def ratios(r: dict[str, Any]) -> str:
    sizes = list(r["throughput"])
    first = r["ratios"][f"throughput {sizes[0]} B"]
    rows = [
        [name, *(_x(r["ratios"][f"throughput {size} B"][name]) for size in sizes)] for name in first
    ]
    return table(["paired ratio, same run", *(_size(s) for s in sizes)], rows)


def batches(r: dict[str, Any]) -> str:
    """Batch throughput per size, its paired ratios, and typed batches, at the
    machine's default kernel limits."""
    return _batch_tables(r["batches"], r["ratios"], "", r["typed_batches"])


def _batch_tables(
    rates: dict[str, dict[str, float]],
    ratio: dict[str, dict[str, float]],
    prefix: str,
    typed: dict[str, float],
) -> str:
    """A batch table (size -> case -> msgs/s), its paired ratios (``ratio``'s
    groups named ``{prefix}batches {size} B``), and the typed batches."""
    sizes = list(rates)
    first = rates[sizes[0]]
    rows = []
    for name in sorted(first, key=lambda n: -first[n]):
        cells = [_k(rates[size][name]) for size in sizes]
        if name.startswith("unimq"):
            rows.append([f"**{name}**", *(f"**{c}**" for c in cells)])
        else:
            rows.append([name, *cells])
    parts = [table(["thousand msgs/s", *(_size(s) for s in sizes)], rows)]
    names = ratio[f"{prefix}batches {sizes[0]} B"]
    parts.append(
        table(
            ["paired ratio, same run", *(_size(s) for s in sizes)],
            [[n, *(_x(ratio[f"{prefix}batches {size} B"][n]) for size in sizes)] for n in names],
        )
    )
    typed_rows = [[name, _k(value)] for name, value in typed.items()]
    typed_rows += [
        [f"ratio: {name}", _x(value)] for name, value in ratio[f"{prefix}typed batches"].items()
    ]
    parts.append(table(["typed, small model", "thousand msgs/s"], typed_rows))
    return "\n\n".join(parts)


#: The Benchmarks page's text where the run has no capacity-matched figures.
MATCHED_PLACEHOLDER = (
    "_Not measured yet: the next full `nox -s bench` (run where `unshare --ipc` is "
    "allowed) fills this section._"
)


def batches_matched(r: dict[str, Any]) -> str:
    """The batch tables again with the kernel queues as roomy as faster-fifo's
    ring (bench.matched): what each queue got, the tables, and the ratios to
    faster-fifo at both configurations side by side."""
    m = r.get("matched")
    if m is None:
        return MATCHED_PLACEHOLDER
    if "skipped" in m:
        return f"_Not measured in this run: {m['skipped']}._"
    sizes = list(m["batches"])
    queues = m["queues"]
    depth = table(
        ["queue capacity, capacity-matched run", *(_size(s) for s in sizes), "typed JSON"],
        [
            [
                "POSIX queue (`max_messages` x `max_message_size`)",
                *(_posix(queues[s]["posix"]) for s in sizes),
                _posix(queues["typed"]["posix"]),
            ],
            [
                "SysV queue (`msg_qbytes` = kernel.msgmnb)",
                *(_bytes(queues[s]["sysv max_bytes"]) for s in sizes),
                _bytes(queues["typed"]["sysv max_bytes"]),
            ],
            [
                "faster-fifo ring",
                *(_bytes(queues[s]["faster-fifo max_bytes"]) for s in sizes),
                "(not compared)",
            ],
        ],
    )
    parts = [depth, _batch_tables(m["batches"], r["ratios"], "matched ", m["typed_batches"])]
    fifo = "faster-fifo put_many/get_many"
    both = [s for s in sizes if s in r.get("batches", {})]
    rows = []
    for kind in ("posix", "sysv"):
        name = f"unimq {kind} batches / {fifo}"
        for label, prefix in (("default limits", ""), ("matched limits", "matched ")):
            found = [r["ratios"].get(f"{prefix}batches {s} B", {}).get(name) for s in both]
            if all(v is not None for v in found):
                rows.append([f"{kind}, {label}", *(_x(v) for v in found if v is not None)])
    if rows:
        parts.append(table([f"unimq batches / {fifo}", *(_size(s) for s in both)], rows))
    image = "![Capacity-matched batches chart](img/bench-batches-matched.png)"
    return image + "\n\n" + "\n\n".join(parts)


def _posix(attrs: dict[str, int]) -> str:
    return f"{attrs['max_messages']:,} x {_size(str(attrs['max_message_size']))}"


def _bytes(n: int) -> str:
    return "1 MiB" if n == 1 << 20 else _size(str(n))


def pingpong(r: dict[str, Any]) -> str:
    row = r["pingpong"]["16"]
    ratio = r["ratios"]["pingpong 16 B median"]
    raw = {"unimq posix": "unimq posix / posix_ipc", "unimq sysv": "unimq sysv / sysv_ipc"}
    rows = []
    for name, (median, p99) in sorted(row.items(), key=lambda kv: kv[1][0]):
        if name in raw:
            rows.append([f"**{name}**", f"**{median:.1f}** ({_x(ratio[raw[name]])})", f"{p99:.1f}"])
        else:
            rows.append([name, f"{median:.1f}", f"{p99:.1f}"])
    return table(["", "median µs", "p99 µs"], rows)


def sysv_timed(r: dict[str, Any]) -> str:
    t = r["sysv_timed"]
    return table(
        ["", ""],
        [
            [
                "blocking receive (`timeout=None`), median wake-up",
                f"{t['blocking median_us']:.0f} µs",
            ],
            ["timed receive, median wake-up", f"{t['timed median_us']:.0f} µs"],
            ["added by the emulation, median", f"{t['added median_us']:.0f} µs"],
            ["CPU of a receiver idle-waiting with a timeout", f"{t['idle CPU %']:.1f}% of a core"],
        ],
    )


def scale(r: dict[str, Any]) -> str:
    s = r["scale"]
    shape = table(
        ["thousand msgs/s", "1 x 1", "2 x 2", "4 x 4"],
        [[kind, *(_k(s[f"{kind} {n}x{n}"]) for n in (1, 2, 4))] for kind in ("posix", "sysv")],
    )
    depth = table(
        ["thousand msgs/s, 1 x 1", "depth 1", "depth 4 / 16", "depth 10 / 256"],
        [
            ["posix (`max_messages`)", *(_k(s[f"posix 1x1 depth {d}"]) for d in (1, 4, 10))],
            [
                "sysv (`max_bytes` = 16 x depth)",
                *(_k(s[f"sysv 1x1 depth {d}"]) for d in (1, 16, 256)),
            ],
        ],
    )
    return shape + "\n\n" + depth


def typed(r: dict[str, Any]) -> str:
    rows = [[name, _k(value)] for name, value in r["typed"].items()]
    rows += [[f"ratio: {name}", _x(value)] for name, value in r["ratios"]["typed"].items()]
    return table(["typed messages", "thousand msgs/s"], rows)


def codecs(r: dict[str, Any]) -> str:
    parts = []
    for group, rows in r["codecs"].items():
        ordered = sorted(rows.items(), key=lambda kv: kv[1])
        parts.append(
            table([f"{group}: ns per encode + decode", "ns"], [[n, f"{v:.0f}"] for n, v in ordered])
        )
    small, seed = r["codecs"]["small model"], r["codecs"]["seed struct"]
    parts.append(
        table(
            ["codec ratio", ""],
            [
                [
                    "unimq JSON / pydantic-core `to_json` + `validate_json`",
                    _x(small["unimq JSONCodec"] / small["pydantic-core to_json/validate_json"]),
                ],
                [
                    "unimq JSON / pydantic TypeAdapter",
                    _x(
                        small["unimq JSONCodec"]
                        / small["pydantic TypeAdapter dump_json/validate_json"]
                    ),
                ],
                [
                    "unimq cstruct / unimq JSON (seed struct)",
                    _x(seed["unimq CStructCodec"] / seed["unimq JSONCodec"]),
                ],
            ],
        )
    )
    return "\n\n".join(parts)


def inprocess(r: dict[str, Any]) -> str:
    """ns per send + receive in one process; ratios are raw / case (higher: faster)."""
    sizes = list(r["inprocess"])
    rows = []
    for case in r["inprocess"][sizes[0]]:
        raw = "posix_ipc raw" if "posix" in case else "sysv_ipc raw"
        cells = []
        for size in sizes:
            ns = r["inprocess"][size][case]
            ratio = r["inprocess"][size][raw] / ns
            cells.append(f"{ns:.0f}" if case == raw else f"{ns:.0f} ({_x(ratio)})")
        rows.append([case, *cells])
    return table(["ns per send + receive", *(_size(s) for s in sizes)], rows)


def memory(r: dict[str, Any]) -> str:
    m = r["memory"]
    return (
        f"Memory per open handle: about {m['posix bytes/handle']:.0f} bytes (POSIX) and "
        f"{m['sysv bytes/handle']:.0f} bytes (SysV) of Python objects."
    )


def _size(size: str) -> str:
    n = int(size)
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "throughput": throughput,
    "ratios": ratios,
    "batches": batches,
    "batches_matched": batches_matched,
    "pingpong": pingpong,
    "sysv_timed": sysv_timed,
    "scale": scale,
    "memory": memory,
    "typed": typed,
    "codecs": codecs,
    "inprocess": inprocess,
}


def render(page: str, results: dict[str, Any]) -> str:
    """``page`` with every marked section rewritten from ``results``."""
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- bench:{name} -->\n)(?:.*?\n)?(<!-- /bench:{name} -->)", re.S)
        if not pattern.search(page):
            raise ValueError(f"the page has no <!-- bench:{name} --> section")
        text = make(results)
        page = pattern.sub(lambda m, text=text: m.group(1) + text + "\n" + m.group(2), page)  # type: ignore[misc]
    return page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("page", type=Path)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    args.page.write_text(render(args.page.read_text(), results))


if __name__ == "__main__":
    main()
