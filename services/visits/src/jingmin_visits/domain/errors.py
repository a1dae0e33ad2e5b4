"""Domain errors: each maps to a 4xx answer at the edge."""


class DomainError(Exception):
    """A command the domain refuses."""


class IllegalTransition(DomainError):
    """The callback is not in a state where this command makes sense (answered 409)."""


class InvalidCommand(DomainError):
    """The command contradicts itself or the callback's history (answered 422)."""
