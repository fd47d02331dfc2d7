"""flood control and outbox pacing

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:57:53.698605

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('updates_in_window', sa.BigInteger(), nullable=False, server_default='0'))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_chat_finished', ['chat_id', 'finished_at'], unique=False)


def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_chat_finished')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('updates_in_window')
        batch_op.drop_column('window_started_at')
