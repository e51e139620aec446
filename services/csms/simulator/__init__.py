"""`csms simulate`: many OCPP 2.0.1 charging stations from one asyncio process, for load tests.

Stations speak OCPP-J directly over websockets' Sans-I/O protocol (no `ocpp` ChargePoint): one
small state machine and one task per station keep thousands of them cheap enough to drive a
CSMS hard.
"""

from csms.simulator.config import SimulationConfig
from csms.simulator.runner import run_simulation

__all__ = ["SimulationConfig", "run_simulation"]
