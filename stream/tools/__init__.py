"""Tools around the worker: the launchers of the real parts, the embedded
stack, replay, tail, the demo and recorded logs."""
