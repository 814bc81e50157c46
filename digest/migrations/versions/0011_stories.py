"""stories: one key per page, photo credit and size, undated backlog, brief items

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 00:00:00

- `articles.link_key` is what every link to one page shares (digest.gather.links): the
  same story over http and https, with tracking parameters or a trailing slash, is one
  story. Filled here for the articles already stored.
- `articles.image_credit`, `image_width`, `image_height` (and the same on edition
  items): the lead photo's credit apart from its caption, and its size when the feed or
  page gave it.
- `articles.backlog`: an undated item found on its source's first fetch. It is old news
  of unknown age and is never offered by itself; an editor may still add it.
- `edition_items.dated`: false when the article gave no date (items already stored
  take their article's `date_from_feed`); such an item is shown
  without a time. `edition_items.brief`: the item is in the edition's compact "also
  new" list (headline and link) rather than told in full.
- `lists.keep_tracking`: links in this list's mail keep their tracking parameters.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from digest.gather.links import link_key

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

articles = sa.table('articles', sa.column('id', sa.Integer), sa.column('link', sa.String),
                    sa.column('link_key', sa.String))


def upgrade() -> None:
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('link_key', sa.String(length=2000), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('image_credit', sa.Text(), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('image_width', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('image_height', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('backlog', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.create_index('ix_articles_link_key', ['link_key'])
    with op.batch_alter_table('edition_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_credit', sa.Text(), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('image_width', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('image_height', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('dated', sa.Boolean(), server_default=sa.true(),
                                      nullable=False))
        batch_op.add_column(sa.Column('brief', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('keep_tracking', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    _fill_link_keys()
    # An item already in an edition is dated as its article was: an undated one's
    # stand-in time (when it was first seen) is never shown as its date.
    op.execute("UPDATE edition_items SET dated = false WHERE article_id IN "
               "(SELECT id FROM articles WHERE date_from_feed = false)")


def _fill_link_keys() -> None:
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.select(articles.c.id, articles.c.link)
                            .where(articles.c.id > last, articles.c.link != '')
                            .order_by(articles.c.id).limit(5000)).all()
        if not rows:
            return
        for row_id, link in rows:
            key = link_key(link)
            if key:
                conn.execute(sa.update(articles).where(articles.c.id == row_id)
                             .values(link_key=key[:2000]))
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.drop_column('keep_tracking')
    with op.batch_alter_table('edition_items', schema=None) as batch_op:
        for column in ('brief', 'dated', 'image_height', 'image_width', 'image_credit'):
            batch_op.drop_column(column)
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_index('ix_articles_link_key')
        for column in ('backlog', 'image_height', 'image_width', 'image_credit', 'link_key'):
            batch_op.drop_column(column)
