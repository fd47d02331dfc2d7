"""subscriptions, and whether a member is in the channel

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 06:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'subscriptions',
        sa.Column('user_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('plan_id', sa.String(length=16), nullable=True),
        sa.Column('charge_id', sa.String(length=255), nullable=True),
        sa.Column('invoice_payload', sa.String(length=128), nullable=True),
        sa.Column('renews_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('link', sa.String(length=255), nullable=True),
        sa.Column('link_created_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_subscriptions')),
    )
    with op.batch_alter_table('memberships') as batch_op:
        batch_op.add_column(sa.Column('in_channel', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('memberships') as batch_op:
        batch_op.drop_column('in_channel')
    op.drop_table('subscriptions')
