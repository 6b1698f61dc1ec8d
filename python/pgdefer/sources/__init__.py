"""Where a :class:`~pgdefer.Topology` comes from: one module per source of a memory map.

* :mod:`.dmesg` — a Linux boot log (``Topology.from_dmesg``);
* :mod:`.host` — this machine's /proc and /sys (``Topology.from_host``);
* :mod:`.files` — TOML/JSON topology files (``Topology.from_file`` / ``to_file``);
* :mod:`.presets` — named machines behind the published measurements;
* :mod:`.x86` — the x86_64 placement rules they share (memblock's top-down allocator, the memmap, low
  memory, ``crashkernel=``, the Normal/Movable boundary).

Sources depend on :mod:`pgdefer.topology`, never the other way round: the ``Topology.from_*`` entry points
import their source lazily. Nothing is imported here, so ``import pgdefer`` stays cheap.
"""
