"""LoRA adapters of a trained core through PEFT (injected, saved, loaded, merged into an export)
and their settings; PEFT is imported only when adapters are used. May import model/, config/ and
checkpoint/; the adapt stage that trains them is train/adapt.py."""
