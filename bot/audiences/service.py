"""Audience packs: create, find, list; and the lookup uploads use to attach leads to them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.audiences.models import KNOWN_SCENES, TIERS, AudiencePack
from bot.core.errors import UserError


def guess_scene(name: str) -> str | None:
    """ "车主-华东-2024Q3" is a 车主 pack: ops name packs after their scene."""
    return next((scene for scene in KNOWN_SCENES if scene in name), None)


def create_audience(
    session: Session, name: str, *, scene: str | None = None, tier: str | None = None, attributes: dict | None = None
) -> AudiencePack:
    name = name.strip()
    if not name:
        raise UserError("an audience pack needs a name")
    if len(name) > 100:
        raise UserError(f"audience pack name is {len(name)} characters; keep it within 100")
    if tier is not None and tier not in TIERS:
        raise UserError(f"unknown tier {tier!r}; tiers are: {' / '.join(TIERS)}")
    if find_audience(session, name) is not None:
        raise UserError(f"audience pack {name!r} already exists; see `waihu audiences show {name}`")
    pack = AudiencePack(name=name, scene=scene or guess_scene(name), tier=tier, attributes=attributes or {})
    session.add(pack)
    session.flush()
    return pack


def find_audience(session: Session, name: str) -> AudiencePack | None:
    return session.execute(select(AudiencePack).where(AudiencePack.name == name.strip())).scalar_one_or_none()


def get_audience(session: Session, name: str) -> AudiencePack:
    pack = find_audience(session, name)
    if pack is None:
        known = session.execute(select(AudiencePack.name).order_by(AudiencePack.name).limit(20)).scalars().all()
        raise UserError(
            f"no audience pack named {name!r}",
            details=[
                f"known: {', '.join(known)}" if known else "none exist yet",
                f"create it: waihu audiences create {name} --scene 车主 --tier 绩优",
            ],
        )
    return pack


def parse_attributes(values: list[str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for value in values:
        if "=" not in value:
            raise UserError(f"--attr {value!r}: write KEY=VALUE, e.g. --attr 城市=上海")
        key, val = value.split("=", 1)
        attributes[key.strip()] = val.strip()
    return attributes
