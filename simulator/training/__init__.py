"""Training features: traces of real runs, a terminal walk-through (`jukisim explain`) and an offline page.

Municipal staff see a flow they just ran, hop by hop: what each system saw, what was encrypted for whom, and
which control decided, with its citation in the PIAs. This package only observes runs through the driver's
``on_hop``; it must never change a message, bypass a component or write a personal value into a trace.
"""

from simulator.training.trace import TraceWriter, load_trace, trace_sink

__all__ = ["TraceWriter", "load_trace", "trace_sink"]
