"""/proc/sysvipc/msg, the kernel's table of SysV message queues: the one parser.

Used by unimq.system (listing, checks) and by the sysv backend (owner hints,
current bytes). Never parses ``ipcs`` output.
"""

from __future__ import annotations

__all__ = ["PROC_SYSVIPC_MSG", "sysv_msg_entries", "sysv_msg_entry"]

PROC_SYSVIPC_MSG = "/proc/sysvipc/msg"


def sysv_msg_entries() -> list[dict[str, int]]:
    """Every row of /proc/sysvipc/msg as {column: int}; ``key`` is unsigned 32-bit.

    ``perms`` is printed in octal, every other column in decimal. An empty list
    where the file cannot be read (no /proc, another kernel).
    """
    rows: list[dict[str, int]] = []
    try:
        with open(PROC_SYSVIPC_MSG) as f:
            header = f.readline().split()
            for line in f:
                fields = line.split()
                if len(fields) != len(header):
                    continue
                try:
                    row = {
                        name: int(text, 8 if name == "perms" else 10)
                        for name, text in zip(header, fields, strict=True)
                    }
                except ValueError:
                    continue
                if "key" in row:
                    row["key"] &= 0xFFFFFFFF
                rows.append(row)
    except OSError:
        pass
    return rows


def sysv_msg_entry(msqid: int | None = None, key: int | None = None) -> dict[str, int] | None:
    """The row of one queue, by msqid or by (unsigned) key, or None."""
    for row in sysv_msg_entries():
        if msqid is not None and row.get("msqid") == msqid:
            return row
        if key is not None and row.get("key") == key:
            return row
    return None
