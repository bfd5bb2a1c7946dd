"""``python -m phy_plugins`` runs the ``phy-plugins`` command."""

import sys

from .cli import main

sys.exit(main())
