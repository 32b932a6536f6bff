"""Whose an eval job is, and who may see or cancel it: the stack's access policy applied to our jobs.

llama-stack checks its own resources (benchmarks, datasets, scoring functions) against its access policy, but its
eval router finds our provider by benchmark id without any check, so jobs are private only if we make them so. A job
records the user who started it; status, result and export need ``read``, cancel needs ``delete``, both decided by
the same policy (``server.auth.access_policy``, or llama-stack's default: the job's user, someone sharing one of
their roles/teams/projects/namespaces, or anyone for a job with no user).
"""

import contextvars
from dataclasses import dataclass

from llama_stack.core.access_control.access_control import is_action_allowed
from llama_stack.core.access_control.datatypes import AccessRule, Action
from llama_stack.core.datatypes import User
from llama_stack.core.request_headers import PROVIDER_DATA_VAR, get_authenticated_user

# Where llama-stack keeps the authenticated user in a request's provider data.
_USER_KEY = "__authenticated_user"
RESOURCE_TYPE = "eval_job"  # in access rules: resource "eval_job::<job id>"


@dataclass(frozen=True, slots=True)
class JobUser:
    """The authenticated user a job belongs to (not to be confused with the replica running it)."""

    principal: str
    attributes: dict[str, list[str]] | None = None

    @classmethod
    def current(cls) -> "JobUser | None":
        """The user of the current request; ``None`` when the stack runs without authentication."""
        user = get_authenticated_user()
        return None if user is None else cls(user.principal, user.attributes)

    def as_stack_user(self) -> User:
        """The user as llama-stack's access control sees it."""
        return User(self.principal, self.attributes)


@dataclass(frozen=True, slots=True)
class _JobResource:
    """A job as a protected resource of the access policy."""

    identifier: str
    owner: User | None
    type: str = RESOURCE_TYPE


def may(policy: list[AccessRule], action: Action, job_id: str, user: JobUser | None) -> bool:
    """Whether the current request's user may ``action`` the job ``job_id`` that belongs to ``user``."""
    owner = None if user is None else user.as_stack_user()
    return is_action_allowed(policy, action, _JobResource(job_id, owner), get_authenticated_user())


def context_of(user: JobUser | None) -> contextvars.Context:
    """A context whose request is the job's user's alone: a resumed job runs as the user who started it.

    Only the user is kept; other provider data of the original request (per-request keys of inference providers,
    say) is not stored with a job, so a resumed job does not have it.
    """
    context = contextvars.copy_context()
    context.run(PROVIDER_DATA_VAR.set, None if user is None else {_USER_KEY: user.as_stack_user()})
    return context
