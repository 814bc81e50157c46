"""slot key: each rendered edition keeps the random key of its slot tokens

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Editions rendered before this keep "" and are read with the old token grammar.
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slot_key', sa.String(length=32), server_default='',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('editions', schema=None) as batch_op:
        batch_op.drop_column('slot_key')
