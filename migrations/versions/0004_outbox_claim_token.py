"""outbox claim token and owner: fenced writes, leases released by the master

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00.000000

Two nullable columns with no default: on PostgreSQL each is a catalogue
change that rewrites nothing, so it is safe while workers of the previous
release keep running (they neither read nor write them).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('locked_by', sa.String(length=160), nullable=True))


def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('locked_by')
        batch_op.drop_column('claim_token')
