"""entitlement ledger, leases, reconciliation cursor

Access is derived from the ledger from now on. Access that exists when this
runs is carried over as one ``carried`` row per member, so nobody gains or
loses a day by the upgrade.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 06:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'entitlements',
        sa.Column('id', AutoId, nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('days', sa.BigInteger(), nullable=False),
        sa.Column('until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('charge_id', sa.String(length=255), nullable=True),
        sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('note', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_entitlements')),
    )
    op.create_index(op.f('ix_entitlements_user_id'), 'entitlements', ['user_id'])
    op.create_index('ix_entitlements_user_order', 'entitlements', ['user_id', 'effective_at', 'id'])
    op.create_index('uq_entitlements_kind_charge', 'entitlements', ['kind', 'charge_id'], unique=True,
                    postgresql_where=sa.text('charge_id IS NOT NULL'), sqlite_where=sa.text('charge_id IS NOT NULL'))
    op.create_table(
        'leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=128), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_leases')),
    )
    op.create_table(
        'star_transaction_cursors',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('applied', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_star_transaction_cursors')),
    )
    op.execute(
        "INSERT INTO entitlements (user_id, kind, days, until, effective_at, note, created_at) "
        "SELECT user_id, 'carried', 0, expires_at, updated_at, 'before the entitlement ledger', updated_at "
        "FROM memberships"
    )


def downgrade():
    op.drop_table('star_transaction_cursors')
    op.drop_table('leases')
    op.drop_index('uq_entitlements_kind_charge', table_name='entitlements')
    op.drop_index('ix_entitlements_user_order', table_name='entitlements')
    op.drop_index(op.f('ix_entitlements_user_id'), table_name='entitlements')
    op.drop_table('entitlements')
