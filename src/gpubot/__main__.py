"""`python -m gpubot`: the same as the `gpubot` console script."""

import sys

from gpubot.cli import main

sys.exit(main())
