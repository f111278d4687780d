"""mfti-lightning: multilingual finetuning with translation instructions (mFTI), on Hydra + PyTorch Lightning.

Importing the package is cheap on purpose: torch, Lightning and transformers are imported only by the modules
that need them, so config commands (``mfti-train --help``, ``--cfg job``, sweep planning) stay fast.
"""

__version__ = "0.1.0"
