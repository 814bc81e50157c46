"""login sessions on the server; login failures by account and client address

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:00:00

A session was a signed cookie checked against users.session_epoch; it is now a row in
login_sessions, so logging out ends it in every worker, and the epoch goes. Login failures
were counted under two keys each ("user:…", "ip:…"); each is now one row with the account
and the client address, so they can be counted per pair. The old failure rows are dropped
(the throttle forgets them within the hour anyway), and everyone logs in again once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.db

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'login_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_login_sessions_user_id', 'login_sessions', ['user_id'])
    op.create_index('ix_login_sessions_expires_at', 'login_sessions', ['expires_at'])
    op.drop_index('ix_login_failures_key_at', table_name='login_failures')
    op.drop_table('login_failures')
    _failures_table(
        sa.Column('account', sa.String(length=320), nullable=False),
        sa.Column('client', sa.String(length=64), nullable=False),
    )
    op.create_index('ix_login_failures_account_at', 'login_failures', ['account', 'at'])
    op.create_index('ix_login_failures_client_at', 'login_failures', ['client', 'at'])
    op.create_index('ix_login_failures_at', 'login_failures', ['at'])
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0',
                                      nullable=False))
    op.drop_index('ix_login_failures_at', table_name='login_failures')
    op.drop_index('ix_login_failures_client_at', table_name='login_failures')
    op.drop_index('ix_login_failures_account_at', table_name='login_failures')
    op.drop_table('login_failures')
    _failures_table(sa.Column('key', sa.String(length=400), nullable=False))
    op.create_index('ix_login_failures_key_at', 'login_failures', ['key', 'at'])
    op.drop_index('ix_login_sessions_expires_at', table_name='login_sessions')
    op.drop_index('ix_login_sessions_user_id', table_name='login_sessions')
    op.drop_table('login_sessions')


def _failures_table(*columns: sa.Column[str]) -> None:
    op.create_table(
        'login_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        *columns,
        sa.Column('at', digest.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
