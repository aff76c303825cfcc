"""``python -m SSSSegmentLib.training --config CONFIG.yaml [--resume]`` (also under torchrun)."""

import sys

from .entry import main_train

sys.exit(main_train(sys.argv[1:]))
