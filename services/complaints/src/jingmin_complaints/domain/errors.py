"""Domain errors: each maps to a 4xx answer at the edge."""


class DomainError(Exception):
    """A command the domain refuses."""


class IllegalTransition(DomainError):
    """The item is not in a state where this command makes sense (answered 409)."""


class InvalidCommand(DomainError):
    """The command contradicts itself or the item's history (answered 422)."""


class ConflictOfInterest(InvalidCommand):
    """The investigator is the subject, or belongs to the subject's unit (answered 422)."""
