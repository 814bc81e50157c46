"""list settings of the inbox-ready mail: postal address, layout, contents, accent, logo

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 01:00:00

- `lists.postal_address`: the sender's physical postal address, shown in every
  edition's footer (CAN-SPAM and the Gmail/Yahoo bulk-sender rules ask for one).
- `lists.layout`: how an edition is laid out, `hero` (the first story large) or
  `compact` (every story alike).
- `lists.toc`: an "In this edition" table of contents at the top of the mail.
- `lists.accent_color`: a `#rrggbb` colour for headings and links ('' = the default).
- `lists.logo_url`: an absolute http(s) URL of the logo shown above the title ('' = none).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('postal_address', sa.Text(), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('layout', sa.String(length=16), server_default='hero',
                                      nullable=False))
        batch_op.add_column(sa.Column('toc', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('accent_color', sa.String(length=16), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('logo_url', sa.String(length=2000), server_default='',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('lists', schema=None) as batch_op:
        for column in ('logo_url', 'accent_color', 'toc', 'layout', 'postal_address'):
            batch_op.drop_column(column)
