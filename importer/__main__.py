"""``python -m importer``: the same as the ``certimport`` command."""

from importer.cli import main

main()
