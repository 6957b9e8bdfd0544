"""Who in a group gets the next message: round-robin or least-loaded, active members only.

- round-robin: members in user-id order; the next message goes to the first active member
  after the one who got the last (`user_group.last_assigned_user_id`), wrapping round.
  A member who is inactive is skipped, and comes back in turn when reactivated.
- least-loaded: the active member with the fewest open messages assigned to them (in any
  group); ties go to the lowest user id. Messages assigned earlier in the same batch count.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casella.models import Group, GroupMember, Message, User


@dataclass(slots=True)
class Pool:
    """A group's active members and their load, kept current while a batch is assigned."""

    group: Group
    members: list[tuple[int, str]]  # (user id, username), active only, by id
    load: dict[int, int] = field(default_factory=dict)  # open messages assigned, per member

    @property
    def policy(self) -> str:
        return self.group.assignment

    def has(self, user_id: int | None) -> bool:
        return any(uid == user_id for uid, _ in self.members)

    def pick(self) -> tuple[int, str] | None:
        if not self.members:
            return None
        if self.policy == "least-loaded":
            chosen = min(self.members, key=lambda m: (self.load.get(m[0], 0), m[0]))
        else:
            last = self.group.last_assigned_user_id
            chosen = next((m for m in self.members if last is None or m[0] > last), self.members[0])
            self.group.last_assigned_user_id = chosen[0]
        self.load[chosen[0]] = self.load.get(chosen[0], 0) + 1
        return chosen

    def release(self, user_id: int | None) -> None:
        """A message leaves `user_id` (reassigned): one less open message for them."""
        if user_id in self.load:
            self.load[user_id] = max(0, self.load[user_id] - 1)


def load_pools(session: Session, names: Collection[str]) -> dict[str, Pool]:
    """Three queries at most, whatever the number of groups: the groups (locked until the
    commit, so two writers never hand out the same turn), their active members, and the
    open load of the least-loaded groups' members."""
    if not names:
        return {}
    groups = list(session.scalars(select(Group).where(Group.name.in_(names)).order_by(Group.id).with_for_update()))
    if not groups:
        return {}
    members: dict[int, list[tuple[int, str]]] = {}
    for group_id, user_id, username in session.execute(
            select(GroupMember.group_id, User.id, User.username).join(User, User.id == GroupMember.user_id)
            .where(GroupMember.group_id.in_([g.id for g in groups]), User.active.is_(True)).order_by(User.id)):
        members.setdefault(group_id, []).append((user_id, username))
    pools = {g.name: Pool(g, members.get(g.id, [])) for g in groups}
    counted = {uid for p in pools.values() if p.policy == "least-loaded" for uid, _ in p.members}
    if counted:
        load = dict(session.execute(
            select(Message.assigned_user_id, func.count(Message.id))
            .where(Message.assigned_user_id.in_(counted), Message.status == "open")
            .group_by(Message.assigned_user_id)).all())
        for pool in pools.values():
            pool.load = load  # shared: a message counts once, whichever group assigned it
    return pools
