"""Domain errors: the kernel's, each answered with its 4xx problem at the HTTP edge."""

from eventkit.domain import DomainError, IllegalTransition, InvalidCommand, NotFound

__all__ = ["ConflictOfInterest", "DomainError", "IllegalTransition", "InvalidCommand", "NotFound"]


class ConflictOfInterest(InvalidCommand):
    """The investigator is the subject, or belongs to the subject's unit (answered 422)."""

    title = "Conflict of interest"
    problem_type = "urn:jingmin:problem:conflict-of-interest"
