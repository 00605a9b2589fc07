"""The model-kinds suite: every kind a Keras user brings x every feature."""

import sys
from pathlib import Path

# The kind builders sit beside the tests (this folder has no __init__.py).
sys.path.insert(0, str(Path(__file__).parent))
