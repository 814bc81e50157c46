"""an unchanged feed is not read again: the digest of each source's last body read

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-12 09:00:00

- `sources.body_digest`: a sha256 (hex) of the last 200 body a fetch read whole and
  committed with its articles, and of what else decided how it was read (the source's
  URL and full-text mode, `[gather] max_entries`, the digest version, ...); "" for the
  sources there are, so their next fetch reads them as before.
- `sources.body_entries`: how many entries that body gave, what a fetch that finds the
  same body again reports as in the feed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): SQLite adds a column with a constant default in
    # place.
    op.add_column('sources', sa.Column('body_digest', sa.String(length=64), server_default='',
                                       nullable=False))
    op.add_column('sources', sa.Column('body_entries', sa.Integer(), server_default='0',
                                       nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('body_entries')
        batch_op.drop_column('body_digest')
