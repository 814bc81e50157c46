"""memberships.signup and mailed_signup: a confirm link names its sign-up

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 10:00:00

`signup` counts a membership's sign-ups (0 the first, one more each time it comes back
after leaving); confirm links carry it, so a link mailed for one sign-up never confirms
a later one. `mailed_signup` is the sign-up the newest confirmation mail was queued for,
so the resend limit never holds back the mail of a new sign-up. Links mailed before this
revision carry no number and are judged by their time, as before (see
`subscribers.members.check_confirmable`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signup', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('mailed_signup', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_column('mailed_signup')
        batch_op.drop_column('signup')
