"""the feedback loop: what came back for each delivery, the notices already taken in

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-10 09:00:00

- `deliveries.feedback` ("" | hard_bounce | soft_bounce | complaint) and
  `deliveries.feedback_at`: what a provider's notice or a DSN said about the delivery,
  and when it happened (digest.feedback.record).
- An index on `deliveries.message_id`: webhooks and DSNs find a delivery by the id the
  provider gave it or by our Message-ID. (On PostgreSQL, building it locks the table
  against writes for as long as it takes: about a second per million deliveries.)
- `feedback_notices`: (provider, key) of each notice taken in, so a replayed webhook
  changes nothing (digest.feedback.first_sight); old rows are pruned as new ones come.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.db

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): SQLite adds a column with a constant default in
    # place, so a ledger of millions of rows is not rewritten.
    op.add_column('deliveries', sa.Column('feedback', sa.String(length=16), server_default='',
                                          nullable=False))
    op.add_column('deliveries', sa.Column('feedback_at', digest.db.UTCDateTime(timezone=True),
                                          nullable=True))
    op.create_index('ix_deliveries_message_id', 'deliveries', ['message_id'])
    op.create_table(
        'feedback_notices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('seen_at', digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_notices')),
        sa.UniqueConstraint('provider', 'key', name=op.f('uq_feedback_notices_provider_key')),
    )
    op.create_index('ix_feedback_notices_seen_at', 'feedback_notices', ['seen_at'])


def downgrade() -> None:
    op.drop_index('ix_feedback_notices_seen_at', table_name='feedback_notices')
    op.drop_table('feedback_notices')
    op.drop_index('ix_deliveries_message_id', table_name='deliveries')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('feedback_at')
        batch_op.drop_column('feedback')
