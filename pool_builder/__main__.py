"""``python -m pool_builder <stage> ...`` (same as the ``xpaste-pool`` console script)."""
import sys

from .cli import main

if __name__ == '__main__':
    sys.exit(main())
