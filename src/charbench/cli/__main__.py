"""``python -m charbench.cli``: the ``charbench`` command."""

import sys

from charbench.cli import main

sys.exit(main())
