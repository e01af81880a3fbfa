"""``complaints customer-ref``: find one customer's stored complaints by the reference stored for them."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipeline.cli.options import (ConfigOption, UserError, WorkDirOption, console, open_existing_store,
                                  settings_from_flags)


def customer_ref(value: str = typer.Argument(..., help="a customer id, phone number … as the source holds it"),
                 config: Optional[Path] = ConfigOption,
                 work_dir: Optional[Path] = WorkDirOption) -> None:
    """The customer reference stored for VALUE, and that customer's stored complaints (for a call-back)."""
    import sqlalchemy as sa

    from pipeline.storage import store
    from pipeline.text.privacy import Privacy

    settings = settings_from_flags(config, work_dir=work_dir)
    engine = open_existing_store(settings)  # first: the reference's key is created in the work directory
    reference = Privacy.from_settings(settings).customer_ref(value)
    if reference is None:
        raise UserError("give a non-empty customer value")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.complaints.c.complaint_id, store.complaints.c.source,
                                      store.complaints.c.source_row, store.tickets.c.ticket_id)
                            .outerjoin(store.tickets, store.tickets.c.complaint_id == store.complaints.c.complaint_id)
                            .where(store.complaints.c.customer_key == reference)).all()
    engine.dispose()
    console.print(f"customer reference: {reference}")
    for row in rows:
        console.print(f"  complaint {row.complaint_id} ({row.source}, row {row.source_row}) ticket {row.ticket_id}")
