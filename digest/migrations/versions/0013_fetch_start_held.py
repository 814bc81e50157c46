"""no story lost between editions: when a running fetch began, the stories held over

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 04:00:00

- `sources.fetch_lease_from`: when the fetch holding the source's lease began (None
  when free). An edition built while a fetch runs ends before that fetch began, so
  what the fetch stores, first seen when it began, goes in the next edition.
- `editions.held`: the ids of the articles an edition had no room for (beyond
  `[edition] max_items` and `brief_max`); the next edition takes them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.db

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fetch_lease_from', digest.db.UTCDateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held', sa.JSON(), server_default='[]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.drop_column('held')
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('fetch_lease_from')
