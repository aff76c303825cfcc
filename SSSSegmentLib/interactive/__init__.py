"""Interactive refinement with SAM-2 prompts: clicks and boxes on a slice fix a segmentation.

``InteractiveSession(volume, model)`` answers a prompt with that slice's mask, carries it to the
neighbouring slices until the lesion ends, and undoes. Importing this package imports torch.
"""

from .config import InteractiveConfig
from .prompt import SlicePrompt, make_prompt
from .session import InteractionResult, InteractiveSession

__all__ = ["InteractionResult", "InteractiveConfig", "InteractiveSession", "SlicePrompt", "make_prompt"]
