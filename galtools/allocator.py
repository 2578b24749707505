"""Allocator settings for galprep's own process (not applied when galtools is a library)."""

_TUNED = False


def keep_freed_memory():
    """Let glibc keep freed chunk-sized buffers for reuse instead of returning them to the
    kernel at once.

    By default blocks above a (moving) threshold are mmap'ed and unmapped on free, so every
    chunk's temporaries are page-faulted in afresh; on virtual machines that costs ~10 µs per
    4 kB page and was a third of augment's time.  Blocks up to 32 MB now come from the heap,
    and up to 256 MB of free heap top is kept.  Peak memory is unchanged.  A no-op where the C
    library has no ``mallopt``.  galprep calls it at start; a program using galtools as a
    library may call it itself.
    """
    global _TUNED
    if _TUNED:
        return
    _TUNED = True
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 256 << 20)
