"""Where work runs: one launcher interface, two implementations (a local process, a Ray node), one wire format.

    wire.py         the one wire format between processes: event lines, errors (user, bug, cancelled, node lost),
                    results; its one encoder and decoder, Cancelled, NodeLost, and the child's EventStream (fd 1)
    launcher.py     the launcher interface: run a worker (a callable or "module:function") on a target; local or Ray
    worker.py       what a launcher runs: a worker callable, or its importable name (the engine passes its own)
    events.py       the progress event's fields and the phase table
    local.py        a fresh process on this machine, in its own session; cancel ends its whole tree
    hardware.py     probe(): what a target is (CPU, ISA flags, RAM, GPU, versions), run on that target
    ray_cluster.py  the same worker on a chosen node of a Ray cluster (one qlab_bench slot per node)
    targets.py      hardware targets (local, cluster nodes) and one comparison across several of them

Nothing here imports the engine (core.engine.evaluate, core.engine.runner, core.serving.jobs): it runs the worker the engine passes in.
"""
