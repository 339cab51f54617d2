"""FSDP2 / tensor-parallel plans applied to the plain models from outside, and the dry run that
checks a large run before it starts. May import model/, config/, plan/ and checkpoint/."""
