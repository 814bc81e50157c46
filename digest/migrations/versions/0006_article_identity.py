"""articles unique per source by their identity (guid, else link, else text hash); a
fetch lease on sources

Two fetches of one source at once used to store its new articles twice. Duplicates
already stored are merged here, before the unique indexes are made: of each group of
rows with one identity in one source, the oldest (lowest id, the first stored) is kept,
edition items that pointed to the others point to it (a sent edition keeps its copy of
the article either way; the link only stops the article being proposed again), and the
others are deleted. Downgrading drops the indexes and the lease; it does not bring the
deleted duplicates back.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import digest.db

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

articles = sa.table('articles', sa.column('id', sa.Integer), sa.column('source_id', sa.Integer),
                    sa.column('guid', sa.String), sa.column('link', sa.String),
                    sa.column('content_hash', sa.String))
edition_items = sa.table('edition_items', sa.column('article_id', sa.Integer))
_guid, _link = articles.c.guid, articles.c.link

# (index, column, the rows it holds, as the index says it and as a query says it): the
# identity is the first of guid, link and hash that is not ''.
IDENTITY = (
    ('uq_articles_source_guid', 'guid', "guid <> ''", _guid != ''),
    ('uq_articles_source_link', 'link', "guid = '' AND link <> ''",
     sa.and_(_guid == '', _link != '')),
    ('uq_articles_source_hash', 'content_hash', "guid = '' AND link = ''",
     sa.and_(_guid == '', _link == '')),
)


def upgrade() -> None:
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fetch_lease_until', digest.db.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('fetch_lease_owner', sa.String(length=200),
                                      server_default='', nullable=False))
    for name, column, where, rows in IDENTITY:
        _merge_duplicates(articles.c[column], rows)
        op.create_index(name, 'articles', ['source_id', column], unique=True,
                        sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def _merge_duplicates(key: sa.ColumnClause[str], rows: sa.ColumnElement[bool]) -> None:
    """Keep the oldest of `rows` per (source, key); repoint items, delete the others."""
    conn = op.get_bind()
    groups = conn.execute(
        sa.select(articles.c.source_id, key, sa.func.min(articles.c.id))
        .where(rows).group_by(articles.c.source_id, key).having(sa.func.count() > 1)
    ).all()
    for source_id, value, keep in groups:
        others = sa.select(articles.c.id).where(
            rows, articles.c.source_id == source_id, key == value, articles.c.id != keep)
        conn.execute(sa.update(edition_items).where(edition_items.c.article_id.in_(others))
                     .values(article_id=keep))
        conn.execute(sa.delete(articles).where(articles.c.id.in_(others)))


def downgrade() -> None:
    for name, *_ in reversed(IDENTITY):
        op.drop_index(name, table_name='articles')
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('fetch_lease_owner')
        batch_op.drop_column('fetch_lease_until')
