"""RPC framework errors (OCPP 2.0.1 Part 4, section 4.3, Table 8): one class per error code."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"


# errorDescription is string[255] (Part 4, section 4.2.3).
MAX_DESCRIPTION_LENGTH = 255


class OcppError(Exception):
    """An error that is answered to the peer as a CALLERROR."""

    code: ClassVar[ErrorCode] = ErrorCode.GENERIC_ERROR

    def __init__(self, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.description = description[:MAX_DESCRIPTION_LENGTH]
        self.details: dict[str, Any] = details or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class FormatViolation(OcppError):
    code = ErrorCode.FORMAT_VIOLATION


class GenericError(OcppError):
    code = ErrorCode.GENERIC_ERROR


class InternalError(OcppError):
    code = ErrorCode.INTERNAL_ERROR


class MessageTypeNotSupported(OcppError):
    code = ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED


class NotImplementedAction(OcppError):
    """The action is not known (not an OCPP 2.0.1 action)."""

    code = ErrorCode.NOT_IMPLEMENTED


class NotSupported(OcppError):
    """The action is a known OCPP 2.0.1 action that this side does not handle."""

    code = ErrorCode.NOT_SUPPORTED


class OccurrenceConstraintViolation(OcppError):
    code = ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION


class PropertyConstraintViolation(OcppError):
    code = ErrorCode.PROPERTY_CONSTRAINT_VIOLATION


class ProtocolError(OcppError):
    code = ErrorCode.PROTOCOL_ERROR


class RpcFrameworkError(OcppError):
    code = ErrorCode.RPC_FRAMEWORK_ERROR


class SecurityError(OcppError):
    code = ErrorCode.SECURITY_ERROR


class TypeConstraintViolation(OcppError):
    code = ErrorCode.TYPE_CONSTRAINT_VIOLATION
