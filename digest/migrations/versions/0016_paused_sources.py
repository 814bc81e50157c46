"""a source can be paused: fetched by no scheduled or command-line run until resumed

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 01:30:00

- `sources.paused`: false for the sources there are, so they are fetched as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): SQLite adds a column with a constant default in
    # place.
    op.add_column('sources', sa.Column('paused', sa.Boolean(), server_default=sa.false(),
                                       nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('paused')
