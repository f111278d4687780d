"""Which process this is, without importing torch: the one rank helper of the project."""

from __future__ import annotations

import os
import sys


def global_rank() -> int:
    """This process's global rank: from torch.distributed once it is initialised, else from the launcher's
    environment (torchrun/Lightning: RANK; srun: SLURM_PROCID when the job has several tasks; LSF:
    JSM_NAMESPACE_RANK; Lightning's script-launched children: LOCAL_RANK); 0 for a single process."""
    dist = sys.modules.get("torch.distributed")  # never imported here: if torch is not loaded, no group exists
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for var in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "LOCAL_RANK"):
        value = os.environ.get(var, "")
        if not value.isdigit():
            continue
        if var == "SLURM_PROCID" and int(os.environ.get("SLURM_NTASKS", "1") or 1) <= 1:
            continue  # one task per job: Lightning launches the ranks itself
        return int(value)
    return 0
