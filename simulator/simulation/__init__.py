"""Discrete-event simulation of the linkage pipeline: virtual time, capacity, calendars, workloads, faults, reports.

Two modes share one calendar, one fault plan and one set of metrics: real mode drives the real components through
``simulator.drivers.des`` (small worlds), cost-model mode carries the same flows' hop trees with measured costs
(a city's year, the whole country). See docs/simulation.md. This package must never implement a control.
"""
