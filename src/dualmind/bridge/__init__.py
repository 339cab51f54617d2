"""The HyperBridge: a question in text, the frozen core thinking in hyperphrase symbols, the
language decoder rendering the answer; retrieval of scenes by pooled core states; chat.

    from dualmind.bridge import Bridge
    bridge = Bridge.from_checkpoints(lexicon_dir, align_checkpoint)  # or .from_pretrained(dir)
    answer = bridge.generate("What is the night full of?", show_thought=True)

See docs/bridge.md.
"""

from dualmind.bridge.answer import Answer, Retrieved, Timings
from dualmind.bridge.bridge import Bridge
from dualmind.bridge.errors import BridgeError

__all__ = ["Answer", "Bridge", "BridgeError", "Retrieved", "Timings"]
