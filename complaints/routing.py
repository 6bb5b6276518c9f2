"""Who handles a complaint: category → role, then the least-loaded reachable staff member."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from complaints.model import Category, Role, Urgency

DEFAULT_CATEGORY_ROLES: dict[str, Role] = {
    Category.ENVIRONMENT: Role.ENVIRONMENT,
    Category.SECURITY: Role.SECURITY,
    Category.MAINTENANCE: Role.MAINTENANCE,
    # Never to the person complained about: a supervisor looks into staff attitude.
    Category.STAFF_ATTITUDE: Role.SUPERVISOR,
    Category.OTHER: Role.SERVICE,
}

# Where work goes when nobody of the routed role can take it.
FALLBACK_ROLES: tuple[Role, ...] = (Role.SERVICE, Role.SUPERVISOR, Role.MANAGER)


@dataclass(frozen=True)
class StaffCandidate:
    id: int
    role: Role
    open_load: int = 0  # complaints this person holds that are still open
    active: bool = True
    reachable: bool = True  # has pressed /start and not blocked the bot


@dataclass(frozen=True)
class RoutingTable:
    category_roles: Mapping[str, Role] = field(default_factory=lambda: dict(DEFAULT_CATEGORY_ROLES))

    @classmethod
    def from_mapping(cls, overrides: Mapping[str, str]) -> RoutingTable:
        roles = dict(DEFAULT_CATEGORY_ROLES)
        for category, role in overrides.items():
            try:
                roles[category] = Role(role)
            except ValueError:
                known = ", ".join(r.value for r in Role)
                raise ValueError(f"routing: category {category!r} names unknown role {role!r} ({known})") from None
        return cls(roles)

    def role_for(self, category: str) -> Role:
        """Unknown (administrator-added) categories go to the service desk for manual triage."""
        return self.category_roles.get(category, Role.SERVICE)


def choose_assignee(
    candidates: Iterable[StaffCandidate],
    role: Role,
    *,
    exclude: Iterable[int] = (),
    fallbacks: tuple[Role, ...] = FALLBACK_ROLES,
) -> StaffCandidate | None:
    """The least-loaded active, reachable staff member of ``role``; ties go to the lowest id.

    ``exclude`` keeps a complaint away from people who already held it (a 复核 never goes back
    to the same person; a missed accept moves on to the next one). If nobody of the role can take
    it, the fallback roles are tried in order, so a complaint is never left without a holder while
    anyone at all is on the roster.
    """
    pool = [c for c in candidates if c.active and c.reachable]
    excluded = set(exclude)
    for wanted in (role, *[r for r in fallbacks if r != role]):
        eligible = [c for c in pool if c.role == wanted and c.id not in excluded]
        if eligible:
            return min(eligible, key=lambda c: (c.open_load, c.id))
    return None


def effective_urgency(classified: Urgency | str, *, is_repeat: bool) -> Urgency:
    """A repeat complaint (same resident and category within 30 days) is at least important."""
    urgency = Urgency(classified)
    if is_repeat and urgency is Urgency.GENERAL:
        return Urgency.IMPORTANT
    return urgency
