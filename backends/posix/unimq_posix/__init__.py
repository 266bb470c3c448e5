"""POSIX backend for unimq (placeholder, being written)."""
