"""Routing: category → role, then the least-loaded active, reachable staff member of that role."""

from __future__ import annotations

import pytest

from complaints.model import Category, Role, Urgency
from complaints.routing import (
    DEFAULT_CATEGORY_ROLES,
    FALLBACK_ROLES,
    RoutingTable,
    StaffCandidate,
    choose_assignee,
    effective_urgency,
)


def staff(id: int, role: Role = Role.MAINTENANCE, load: int = 0, *, active: bool = True,
          reachable: bool = True) -> StaffCandidate:
    return StaffCandidate(id=id, role=role, open_load=load, active=active, reachable=reachable)


def chosen(*args: object, **kwargs: object) -> int | None:
    result = choose_assignee(*args, **kwargs)  # type: ignore[arg-type]
    return result.id if result else None


def test_least_loaded_wins() -> None:
    pool = [staff(1, load=3), staff(2, load=1), staff(3, load=2)]
    assert chosen(pool, Role.MAINTENANCE) == 2


def test_ties_go_to_the_lowest_id_whatever_the_order() -> None:
    pool = [staff(9, load=1), staff(4, load=1), staff(7, load=1)]
    assert chosen(pool, Role.MAINTENANCE) == 4
    assert chosen(list(reversed(pool)), Role.MAINTENANCE) == 4


def test_other_roles_are_not_considered_while_the_role_has_someone() -> None:
    pool = [staff(1, Role.SERVICE, load=0), staff(2, Role.MAINTENANCE, load=10)]
    assert chosen(pool, Role.MAINTENANCE) == 2


def test_exclude_keeps_previous_holders_away() -> None:
    pool = [staff(1, load=0), staff(2, load=5), staff(3, load=9)]
    assert chosen(pool, Role.MAINTENANCE, exclude=[1]) == 2
    assert chosen(pool, Role.MAINTENANCE, exclude={1, 2}) == 3


def test_inactive_and_unreachable_staff_are_skipped() -> None:
    pool = [staff(1, active=False), staff(2, reachable=False), staff(3, load=7)]
    assert chosen(pool, Role.MAINTENANCE) == 3


def test_fallback_roles_in_order_when_the_role_is_empty() -> None:
    assert FALLBACK_ROLES == (Role.SERVICE, Role.SUPERVISOR, Role.MANAGER)
    pool = [staff(5, Role.MANAGER), staff(4, Role.SUPERVISOR, load=3), staff(3, Role.SERVICE, load=8),
            staff(2, Role.ENVIRONMENT)]
    assert chosen(pool, Role.MAINTENANCE) == 3  # service desk first, however busy
    assert chosen(pool[:2], Role.MAINTENANCE) == 4
    assert chosen(pool[:1], Role.MAINTENANCE) == 5
    # Excluded or unreachable people of the role count as "nobody": fall back, never back to them.
    assert chosen([staff(1, Role.MAINTENANCE), staff(3, Role.SERVICE)], Role.MAINTENANCE, exclude=[1]) == 3
    # Another operational role is never a fallback: environment staff do not fix elevators.
    assert chosen([staff(2, Role.ENVIRONMENT)], Role.MAINTENANCE) is None


def test_custom_fallbacks_and_nobody_at_all() -> None:
    pool = [staff(1, Role.SERVICE), staff(2, Role.MANAGER)]
    assert chosen(pool, Role.SUPERVISOR, fallbacks=(Role.MANAGER, Role.SERVICE)) == 2
    assert chosen(pool, Role.SUPERVISOR, fallbacks=()) is None
    assert chosen([], Role.MAINTENANCE) is None


def test_default_table_routes_staff_attitude_to_a_supervisor() -> None:
    table = RoutingTable()
    assert table.role_for(Category.STAFF_ATTITUDE) is Role.SUPERVISOR
    assert table.role_for("maintenance") is Role.MAINTENANCE
    assert table.role_for("environment") is Role.ENVIRONMENT
    assert table.role_for("security") is Role.SECURITY
    assert table.role_for("other") is Role.SERVICE
    assert table.role_for("装修噪音") is Role.SERVICE  # an administrator-added category: manual triage
    # The person complained about is never chosen: staff_attitude has no operational staff to pick from.
    pool = [staff(1, Role.MAINTENANCE), staff(2, Role.SUPERVISOR, load=4)]
    assert chosen(pool, table.role_for("staff_attitude")) == 2


def test_mapping_is_configurable() -> None:
    table = RoutingTable.from_mapping({"environment": "service", "pets": "environment"})
    assert table.role_for("environment") is Role.SERVICE
    assert table.role_for("pets") is Role.ENVIRONMENT
    assert table.role_for("maintenance") is Role.MAINTENANCE  # defaults kept for the rest
    assert DEFAULT_CATEGORY_ROLES["environment"] is Role.ENVIRONMENT  # the defaults were not mutated


def test_mapping_with_an_unknown_role_names_category_and_role() -> None:
    with pytest.raises(ValueError) as info:
        RoutingTable.from_mapping({"maintenance": "plumber"})
    message = str(info.value)
    assert "maintenance" in message and "plumber" in message and "supervisor" in message


@pytest.mark.parametrize(("classified", "is_repeat", "expected"), [
    ("general", False, Urgency.GENERAL),
    ("general", True, Urgency.IMPORTANT),
    ("important", True, Urgency.IMPORTANT),
    ("emergency", True, Urgency.EMERGENCY),  # at least important: never lowered
    (Urgency.EMERGENCY, False, Urgency.EMERGENCY),
])
def test_effective_urgency_for_repeats(classified: str, is_repeat: bool, expected: Urgency) -> None:
    assert effective_urgency(classified, is_repeat=is_repeat) is expected


def test_effective_urgency_rejects_unknown() -> None:
    with pytest.raises(ValueError):
        effective_urgency("whenever", is_repeat=False)
