"""Region → integrated care system → organisation."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from speakup.crypto import PublicKey
from speakup.extensions import db


class Region(db.Model):  # type: ignore[name-defined,misc]
    """An NHS England region (Speakup serves the Midlands)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    systems: Mapped[list[System]] = relationship(back_populates="region", order_by="System.name")

    def __repr__(self) -> str:
        return f"<Region {self.code}>"


class System(db.Model):  # type: ignore[name-defined,misc]
    """An integrated care system (ICS)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    region: Mapped[Region] = relationship(back_populates="systems")
    organisations: Mapped[list[Organisation]] = relationship(
        back_populates="system", order_by="Organisation.name"
    )

    def __repr__(self) -> str:
        return f"<System {self.code}>"


class Organisation(db.Model):  # type: ignore[name-defined,misc]
    """A trust, ICB, primary or social care provider whose staff can speak up."""

    id: Mapped[int] = mapped_column(primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("system.id"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: trust, icb, primary_care or social_care
    kind: Mapped[str] = mapped_column(String(32), default="trust")
    #: service-level settings; NULL means the configured default (config [sla], [retention])
    sla_acknowledge_working_days: Mapped[int | None] = mapped_column(Integer)
    sla_acknowledge_ceiling_days: Mapped[int | None] = mapped_column(Integer)
    sla_feedback_days: Mapped[int | None] = mapped_column(Integer)
    sla_update_days: Mapped[int | None] = mapped_column(Integer)
    #: months a closed case is kept after detriment monitoring ends
    retention_months: Mapped[int | None] = mapped_column(Integer)
    #: public half of the organisation's offline recovery key; the private half is never here
    recovery_public_mlkem: Mapped[bytes | None] = mapped_column(LargeBinary)
    recovery_public_x25519: Mapped[bytes | None] = mapped_column(LargeBinary)

    system: Mapped[System] = relationship(back_populates="organisations")

    @property
    def recovery_public_key(self) -> PublicKey | None:
        """The recovery public key, if the custodian has generated one."""
        if self.recovery_public_mlkem is None or self.recovery_public_x25519 is None:
            return None
        return PublicKey(self.recovery_public_mlkem, self.recovery_public_x25519)

    def __repr__(self) -> str:
        return f"<Organisation {self.code}>"
