"""``python -m unimq ...`` runs the command line."""

from __future__ import annotations

from unimq.cli import main

if __name__ == "__main__":
    main()
