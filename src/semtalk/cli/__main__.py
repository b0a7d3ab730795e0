"""``python -m semtalk.cli`` (used under torchrun)."""

import sys

from semtalk.cli import main

sys.exit(main())
