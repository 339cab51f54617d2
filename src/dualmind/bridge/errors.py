"""The one error type of the bridge: bad input or pieces that do not belong together.

Every message names what was wrong (the path, the key, both fingerprints, the sizes), so the CLI
can print it as it is and exit 2 instead of showing a traceback.
"""

from __future__ import annotations


class BridgeError(ValueError):
    """A prompt, model folder, index or adapter the bridge cannot use; the message says why."""
