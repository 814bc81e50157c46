"""senders and their heartbeats; fetch counts per source

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00

`senders` holds a row per running sender (`digest worker`, `digest serve`'s thread),
renewed every few seconds and removed on a clean stop: /healthz, `digest status` and
/metrics read it. `sources.fetches` and `fetch_failures` count every fetch from now on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.db

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_COUNTS = ('sent', 'failed', 'deferred', 'uncertain')


def upgrade() -> None:
    op.create_table(
        'senders',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('backend', sa.String(length=32), nullable=False),
        sa.Column('started_at', digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('beat_at', digest.db.UTCDateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.Integer(), server_default='0', nullable=False)
          for name in _COUNTS),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_senders_beat_at', 'senders', ['beat_at'])
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fetches', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('fetch_failures', sa.Integer(), server_default='0',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('fetch_failures')
        batch_op.drop_column('fetches')
    op.drop_index('ix_senders_beat_at', table_name='senders')
    op.drop_table('senders')
