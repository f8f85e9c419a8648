from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, LargeBinary, String, Text, text

from bot.core.db.base import Base, JsonDocument, PhoneHash, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")


class LeadPack(Base):
    """One uploaded file. sha256 makes a re-upload of the same bytes a no-op."""

    __tablename__ = "lead_packs"

    id = Column(_Id, primary_key=True)
    name = Column(String(200), nullable=False, unique=True)
    file_name = Column(String(500), nullable=False)
    file_sha256 = Column(String(64), nullable=False, unique=True)
    file_format = Column(String(40), nullable=False)  # e.g. "csv gb18030", "xlsx"
    audience_id = Column(_Id, ForeignKey("audience_packs.id", ondelete="SET NULL"))
    # First-party packs (our own landing pages) may lack per-row consent if a basis is stated.
    first_party = Column(Integer, nullable=False, default=0)
    consent_basis = Column(Text)
    column_map = Column(JsonDocument, nullable=False, default=dict)
    uploaded_by = Column(String(100), nullable=False)
    uploaded_at = Column(UtcDateTime, nullable=False, default=utc_now)
    rows = Column(Integer, nullable=False, default=0)
    accepted = Column(Integer, nullable=False, default=0)
    rejected = Column(Integer, nullable=False, default=0)
    duplicates = Column(Integer, nullable=False, default=0)
    dnc_hits = Column(Integer, nullable=False, default=0)
    rejected_by_reason = Column(JsonDocument, nullable=False, default=dict)


class Lead(Base):
    """A person we may call. The raw number exists only as ciphertext."""

    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_pack_id", "pack_id"),
        # Speed to lead (migration 0015): an API lead's id is the caller's, unique within its pack.
        Index("ix_leads_pack_id_external_id", "pack_id", "external_id", unique=True),
        Index(
            "ix_leads_priority_lane",
            "pack_id",
            "lead_left_at",
            postgresql_where=text("priority = 1"),
            sqlite_where=text("priority = 1"),
        ),
        # Batch packs are dialled freshest 留资 first (the planner's untried scan); only dated leads.
        Index(
            "ix_leads_lead_left_at",
            "lead_left_at",
            "id",
            postgresql_where=text("lead_left_at IS NOT NULL"),
            sqlite_where=text("lead_left_at IS NOT NULL"),
        ),
    )

    id = Column(_Id, primary_key=True)
    pack_id = Column(_Id, ForeignKey("lead_packs.id", ondelete="CASCADE"), nullable=False)
    audience_id = Column(_Id, ForeignKey("audience_packs.id", ondelete="SET NULL"))
    row_number = Column(Integer, nullable=False)  # line in the uploaded file, for "duplicate of row N"
    phone_ciphertext = Column(LargeBinary, nullable=False)
    # Unique: one person is one lead across packs (dedupe against what is stored).
    phone_hash = Column(PhoneHash, nullable=False, unique=True)
    phone_masked = Column(String(20), nullable=False)
    line_type = Column(String(10), nullable=False)  # mobile | landline
    name = Column(String(100))
    gender = Column(String(1))  # M | F | null
    consent_source = Column(String(200))
    consent_at = Column(UtcDateTime)
    consent_scope = Column(String(200))
    custom_fields = Column(JsonDocument, nullable=False, default=dict)
    # Where the callee lives (bot.core.region, migration 0014): province short name (广东),
    # city as the geocoder writes it (深圳市), their time zone, and whether the upload's
    # column (column) or the number's 归属地 (number) said so; null for leads from before.
    province = Column(String(20))
    city = Column(String(40))
    timezone = Column(String(40))
    region_source = Column(String(10))
    status = Column(String(20), nullable=False, default="new")
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    # Speed to lead: the caller's id (API leads), when the person left their number (留资), and
    # PRIORITY_LANE for leads the planner dials within minutes (bot/dialing/planner.py).
    external_id = Column(String(100))
    lead_left_at = Column(UtcDateTime)
    priority = Column(Integer, nullable=False, default=0, server_default=text("0"))


PRIORITY_LANE = 1


class LeadReject(Base):
    """A row not taken, with why. The raw row is kept encrypted (it holds the number)."""

    __tablename__ = "lead_rejects"
    __table_args__ = (
        Index("ix_lead_rejects_pack_id_row_number", "pack_id", "row_number"),
        Index("ix_lead_rejects_phone_hash", "phone_hash"),
    )

    id = Column(_Id, primary_key=True)
    pack_id = Column(_Id, ForeignKey("lead_packs.id", ondelete="CASCADE"), nullable=False)
    row_number = Column(Integer, nullable=False)
    reason = Column(String(40), nullable=False)
    message = Column(Text, nullable=False)
    # Set when the phone normalised, so `leads forget` can erase this row too.
    phone_hash = Column(PhoneHash)
    raw_masked = Column(Text, nullable=False)  # the row as JSON list, digit runs masked
    raw_ciphertext = Column(LargeBinary)  # the row exactly as uploaded, encrypted
