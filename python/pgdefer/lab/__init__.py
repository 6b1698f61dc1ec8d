"""The kernel lab: the real kernel as the oracle.

``pgdefer lab boot`` boots an unmodified kernel under QEMU on a chosen NUMA layout with ``memblock=debug``
(optionally the ``kmem:mm_page_alloc/mm_page_free`` tracepoints) and a tiny initramfs that dumps
``/proc/zoneinfo`` & co. and powers off; the serial log and a manifest are saved. The log is then imported
(:mod:`pgdefer.lab.sections`: the exact memblock.reserved map, the page trace, the ``/proc`` dumps) and
compared with the model's prediction (:mod:`pgdefer.lab.compare`).

Modules: :mod:`.fetch` (Debian packages into the cache), :mod:`.initramfs` (newc cpio with busybox),
:mod:`.qemu` (layouts and the QEMU runner), :mod:`.sections` (kernel-lab log sections), :mod:`.trace`
(the page-allocation trace as a workload), :mod:`.compare`, :mod:`.corpus`, :mod:`.cli`.
"""

from .errors import LabError

__all__ = ["LabError"]
