"""Training throughput: FLOPs from the model shape and real token counts, MFU against the device's peak FLOP/s.

Torch-free except :func:`device_info` and :func:`peak_memory_gb` (imported lazily), so sweep planning can use
:func:`train_flops_per_sequence` for GPU-hour estimates.
"""

from __future__ import annotations

# Peak FLOP/s come from Lightning's maintained table (lightning_fabric.utilities.throughput.get_available_flops,
# bf16) wherever it names the device (A100, H100 SXM/PCIe/NVL, L4, L40, RTX cards, ...). This table is the fallback
# for device names it does not parse: torch names an H200 SXM "NVIDIA H200", which Lightning matches only as
# "H200 SXM1"/"H200 NVL1" (and lists with the 2:4-sparsity figure, twice the dense one), or a plain "NVIDIA H100".
# Dense bf16 tensor-core peak (no sparsity), FLOP/s, from the vendors' data sheets: A100 312 TFLOPS;
# H100 SXM 989 TFLOPS (PCIe 756); H200 989 TFLOPS (same compute as H100 SXM).
PEAK_BF16_FLOPS = {"A100": 312e12, "H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12}


def peak_flops(device_name: str | None) -> float | None:
    """The fallback table's peak bf16 FLOP/s for a device name such as ``NVIDIA H200``; None when not in it."""
    if not device_name:
        return None
    name = device_name.upper()
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if all(part.upper() in name for part in key.split()):
            return PEAK_BF16_FLOPS[key]
    return None


def matmul_params(shape: dict) -> int:
    """Parameters that take part in matmuls per token: decoder layers + the (tied or not) output projection.

    Attention: q and output projections d x d, k and v d x (d * kv_heads / heads) (grouped-query attention when
    ``kv_heads`` < ``attention_heads``, e.g. Llama-3, Qwen2.5); feed-forward: ``ffn_matrices`` d x f matrices
    (2 for GELU MLPs: XGLM, BLOOM, GPT-2; 3 for SwiGLU: Llama, Qwen2)."""
    L, d, f, V = int(shape["num_layers"]), int(shape["d_model"]), int(shape["ffn_dim"]), int(shape["vocab_size"])
    heads = int(shape.get("attention_heads") or 1)
    kv = int(shape.get("kv_heads") or heads)
    attn = 2 * d * d + 2 * d * (d * kv // heads)
    return L * (attn + int(shape.get("ffn_matrices") or 2) * d * f) + V * d


def train_flops_per_sequence(shape: dict, length: int) -> float:
    """Forward + backward FLOPs of one sequence of ``length`` real tokens (PaLM appendix B accounting:
    6 N per token for the matmul weights plus 12 L d T per token for attention scores and values)."""
    L, d = int(shape["num_layers"]), int(shape["d_model"])
    return 6.0 * matmul_params(shape) * length + 12.0 * L * d * length * length


class Counter:
    """Accumulates what a rank trained on: sequences, real tokens, computed (padded) tokens, FLOPs."""

    def __init__(self, shape: dict | None):
        self.shape = dict(shape) if shape else None
        self.samples = 0
        self.real_tokens = 0
        self.padded_tokens = 0
        self.flops = 0.0
        self.seconds = 0.0

    def add_batch(self, lengths: list[int], width: int) -> None:
        self.samples += len(lengths)
        self.real_tokens += sum(lengths)
        self.padded_tokens += len(lengths) * width
        if self.shape:
            self.flops += sum(train_flops_per_sequence(self.shape, n) for n in lengths)

    def add_lengths(self, lengths, width: int) -> None:
        """:meth:`add_batch` for a tensor of row lengths, summed in one pass (sum of n and of n squared give the
        FLOPs of :func:`train_flops_per_sequence` exactly). Called with the batch's CPU tensor before it moves
        to the accelerator, so counting never waits for the device."""
        n = int(lengths.numel())
        s1 = int(lengths.sum())
        self.samples += n
        self.real_tokens += s1
        self.padded_tokens += n * int(width)
        if self.shape:
            s2 = float((lengths.double() ** 2).sum())
            L, d = int(self.shape["num_layers"]), int(self.shape["d_model"])
            self.flops += 6.0 * matmul_params(self.shape) * s1 + 12.0 * L * d * s2

    def as_list(self) -> list[float]:
        return [self.samples, self.real_tokens, self.padded_tokens, self.flops, self.seconds]


class BatchTimer:
    """Time spent inside training batches without a host synchronisation per batch: on CUDA a pair of events
    per batch, read (one wait on the newest event) only when :meth:`fold` is called, at logging intervals and at
    the end; elsewhere ``time.perf_counter``."""

    def __init__(self):
        self.seconds = 0.0
        self._pending: list = []  # (start, end) CUDA event pairs not read yet
        self._start = None
        self._t = None

    def start(self, device) -> None:
        import time

        if getattr(device, "type", None) == "cuda":
            import torch

            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t = time.perf_counter()

    def stop(self, device) -> None:
        import time

        if getattr(device, "type", None) == "cuda" and self._start is not None:
            import torch

            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._pending.append((self._start, end))
            self._start = None
        elif self._t is not None:
            self.seconds += time.perf_counter() - self._t
            self._t = None

    def fold(self) -> float:
        """Add the pending CUDA intervals (waiting once, for the newest event); the total seconds."""
        if self._pending:
            self._pending[-1][1].synchronize()
            self.seconds += sum(s.elapsed_time(e) for s, e in self._pending) / 1000.0
            self._pending = []
        return self.seconds


def report(
    totals: list[float],
    seconds: float,
    world_size: int,
    device: str,
    peak: float | None,
    peak_memory: float | None,
    params_total: int,
    params_trainable: int,
) -> dict:
    """The ``results["throughput"]`` record from counters summed over ranks and the wall time of training."""
    samples, real, padded, flops, _ = totals
    return {
        "tokens_per_s": real / seconds if seconds > 0 else None,
        "samples_per_s": samples / seconds if seconds > 0 else None,
        "mfu": (flops / seconds) / (peak * world_size) if peak and seconds > 0 else None,
        "padding_efficiency": real / padded if padded else None,
        "peak_memory_gb": peak_memory,
        "params_total": int(params_total),
        "params_trainable": int(params_trainable),
        "device": device,
        "world_size": int(world_size),
        "train_seconds": seconds,
        "real_tokens": int(real),
        "model_flops": flops,
    }


def device_info(device) -> tuple[str, float | None]:
    """(device name, peak bf16 FLOP/s or None) for a torch device: Lightning's table where it names the device,
    else :data:`PEAK_BF16_FLOPS`; None on CPU."""
    import platform
    import warnings

    import torch

    if getattr(device, "type", str(device)) == "cuda":
        from lightning_fabric.utilities.throughput import get_available_flops

        name = torch.cuda.get_device_name(device)
        with warnings.catch_warnings():  # "FLOPs not found for ...": the fallback table answers then
            warnings.simplefilter("ignore")
            peak = get_available_flops(torch.device(device), torch.bfloat16)
        return name, float(peak) if peak else peak_flops(name)
    return f"cpu ({platform.processor() or platform.machine()})", None


def peak_memory_gb(device) -> float:
    """Peak allocated accelerator memory, or the process' peak resident set size on CPU, in GiB."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
