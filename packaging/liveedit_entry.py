"""Entry point of the frozen application: the same dispatcher as the `liveedit` command."""

import sys

from liveedit.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
