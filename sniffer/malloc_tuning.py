"""glibc malloc settings for the long-running sniffer.

glibc raises its mmap threshold to the size of the largest block freed so far (up to 32 MiB). The
sniffer frees MiB-sized blocks every few seconds (serialized report batches, protobuf arenas, gRPC
buffers), so after the first batch such blocks come from the heap, where they fragment it and stay
mapped. A fixed threshold keeps them in their own mappings, returned to the kernel when freed:
~4 MiB less steady-state RSS at 10k edges (bench/sniffer_memory.py).
"""
from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # malloc.h
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, now kept fixed


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold (which also stops it adapting the trim threshold). False where the C
    library has no mallopt (musl) or refuses: then nothing changes, the sniffer just keeps more memory."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold)
    return done
