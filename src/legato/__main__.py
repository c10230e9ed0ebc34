"""``python -m legato``: the ``legato`` command, for when the script is not on PATH."""

from legato.cli.main import main

if __name__ == "__main__":
    main()
