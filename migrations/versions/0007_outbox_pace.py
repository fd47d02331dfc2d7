"""outbox pace shared by every replica

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'outbox_pace',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('asked_at', sa.Double(), nullable=False),
        sa.Column('next_turn_at', sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_outbox_pace')),
    )


def downgrade():
    op.drop_table('outbox_pace')
