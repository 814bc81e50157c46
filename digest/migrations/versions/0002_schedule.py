"""schedule: review policy, editors to notify, the last scheduled time dealt with

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults fill the rows of lists that exist already.
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_policy', sa.String(length=16),
                                      server_default='hold', nullable=False))
        batch_op.add_column(sa.Column('editor_emails', sa.Text(), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('last_scheduled_for',
                                      digest.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.drop_column('last_scheduled_for')
        batch_op.drop_column('editor_emails')
        batch_op.drop_column('review_policy')
