"""Conversions (成交): a policy bought by a lead, matched to the lead and its arms (issue 17, item 4).

A conversion arrives from the insurer's system (`POST /api/v1/conversions`) or a file
(`waihu conversions import`). Only matched policies become `Conversion` rows; a row that
could not be taken (no such lead, bad premium …) is a `ConversionReject` with its row number,
field and reason, so nothing anyone sent is silently dropped.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, Numeric, String, Text

from bot.core.db.base import Base, JsonDocument, PhoneHash, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")

SOURCE_API = "api"
SOURCE_FILE = "file"


class Conversion(Base):
    """One policy (保单) of one lead. `policy_no` is unique: a re-import or re-post is a duplicate."""

    __tablename__ = "conversions"
    __table_args__ = (
        # The report sums a campaign's attributed conversions per lead.
        Index("ix_conversions_campaign_id_lead_id", "campaign_id", "lead_id"),
        Index("ix_conversions_lead_id", "lead_id"),
    )

    id = Column(_Id, primary_key=True)
    policy_no = Column(String(64), nullable=False, unique=True)
    product = Column(String(200), nullable=False)
    premium = Column(Numeric(12, 2), nullable=False)  # yuan
    converted_at = Column(UtcDateTime, nullable=False)
    # Erasure (`waihu leads forget`) deletes the lead, and its policies with it.
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    # The lead's last connected call before the policy, within the attribution window; null:
    # matched to the lead but unattributed (counted apart in the report).
    attempt_id = Column(_Id, ForeignKey("call_attempts.id", ondelete="SET NULL"))
    campaign_id = Column(_Id, ForeignKey("campaigns.id", ondelete="SET NULL"))
    arms = Column(JsonDocument, nullable=False, default=dict)  # the attempt's arms when matched
    source = Column(String(10), nullable=False)  # api | file
    batch = Column(String(200))  # the file name, for an import
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)


class ConversionReject(Base):
    """A conversion row not taken: where (row, field) and why. No clear phone number is kept."""

    __tablename__ = "conversion_rejects"
    __table_args__ = (
        Index("ix_conversion_rejects_phone_hash", "phone_hash"),
        Index("ix_conversion_rejects_created_at", "created_at"),
    )

    id = Column(_Id, primary_key=True)
    source = Column(String(10), nullable=False)
    batch = Column(String(200))
    row_number = Column(Integer, nullable=False)  # file row as a spreadsheet shows it; API: item index
    field = Column(String(40), nullable=False)
    reason = Column(String(40), nullable=False)  # unmatched | invalid | missing | ambiguous
    message = Column(Text, nullable=False)
    policy_no = Column(String(64))
    # Set when the phone normalised, so `leads forget` erases this row too.
    phone_hash = Column(PhoneHash)
    raw_masked = Column(Text, nullable=False)  # the row as JSON, digit runs masked
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
