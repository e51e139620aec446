"""The OCPP 2.0.1 actions this CSMS handles, and the reasons it refuses a CALL (Part 4, 4.1.7)."""

from __future__ import annotations

from enum import StrEnum

from csms.ocpp.errors import NotImplementedAction, NotSupported
from csms.ocpp.validation import known_actions


class StationAction(StrEnum):
    """Station-initiated CALLs the CSMS answers."""

    BOOT_NOTIFICATION = "BootNotification"
    HEARTBEAT = "Heartbeat"
    STATUS_NOTIFICATION = "StatusNotification"
    NOTIFY_EVENT = "NotifyEvent"


class CsmsAction(StrEnum):
    """CSMS-initiated CALLs operators can send through the commands API."""

    RESET = "Reset"
    CHANGE_AVAILABILITY = "ChangeAvailability"
    TRIGGER_MESSAGE = "TriggerMessage"


def check_station_action(action: str) -> StationAction:
    """The handled action; NotImplemented if unknown, NotSupported if known but not handled."""
    try:
        return StationAction(action)
    except ValueError:
        pass
    if action in known_actions():
        raise NotSupported(f"{action} is not supported by this CSMS")
    raise NotImplementedAction(f"{action} is not an OCPP 2.0.1 action")
