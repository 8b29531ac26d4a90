"""`python -m ow.cli`: the same as the `ow` command."""

from ow.cli import main

if __name__ == "__main__":
    main()
