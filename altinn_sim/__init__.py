"""A faithful stand-in for the Altinn services the receiver talks to, for development, tests and the demo.

See docs/simulator.md for what it mimics, how closely, and how to drive it.
"""

from __future__ import annotations

from altinn_sim.app import create_app
from altinn_sim.faults import FaultRule
from altinn_sim.runner import RunningSimulator, SimulatorAdmin, running_simulator
from altinn_sim.settings import SimSettings, load_sim_settings

__all__ = [
    "FaultRule",
    "RunningSimulator",
    "SimSettings",
    "SimulatorAdmin",
    "create_app",
    "load_sim_settings",
    "running_simulator",
]
