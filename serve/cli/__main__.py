"""``python -m serve.cli`` runs the ``hotline`` command."""
import sys

from serve.cli import main

sys.exit(main())
