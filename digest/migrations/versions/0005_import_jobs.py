"""import jobs of the admin console; indexes for edition stats (unsubscribes, bounces
by time)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'import_jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('list_id', sa.Integer(), nullable=False),
        sa.Column('filename', sa.String(length=300), nullable=False),
        sa.Column('path', sa.String(length=1000), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('confirmed', sa.Boolean(), nullable=False),
        sa.Column('created_by', sa.String(length=320), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('rows', sa.Integer(), nullable=False),
        sa.Column('added', sa.Integer(), nullable=False),
        sa.Column('updated', sa.Integer(), nullable=False),
        sa.Column('unchanged', sa.Integer(), nullable=False),
        sa.Column('rejected', sa.Integer(), nullable=False),
        sa.Column('suppressed', sa.Integer(), nullable=False),
        sa.Column('confirmations', sa.Integer(), nullable=False),
        sa.Column('rejects_path', sa.String(length=1000), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('created_at', digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('started_at', digest.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('heartbeat_at', digest.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_at', digest.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['list_id'], ['lists.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_import_jobs_list_id', 'import_jobs', ['list_id'])
    op.create_index('ix_memberships_list_unsubscribed', 'memberships',
                    ['list_id', 'unsubscribed_at'])
    op.create_index('ix_suppressions_reason_created', 'suppressions',
                    ['reason', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_suppressions_reason_created', table_name='suppressions')
    op.drop_index('ix_memberships_list_unsubscribed', table_name='memberships')
    op.drop_index('ix_import_jobs_list_id', table_name='import_jobs')
    op.drop_table('import_jobs')
