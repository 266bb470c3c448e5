"""SysV backend for unimq (placeholder, being written)."""
