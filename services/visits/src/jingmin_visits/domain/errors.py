"""Domain errors: the kernel's, each answered with its 4xx problem at the HTTP edge."""

from eventkit.domain import DomainError, IllegalTransition, InvalidCommand, NotFound

__all__ = ["DomainError", "IllegalTransition", "InvalidCommand", "NotFound"]
