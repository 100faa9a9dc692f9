"""rate limiting: admitted requests per client and window, shared by every process

Revision ID: 0009_rate_limits
Revises: 0008_trust
"""

from alembic import op
import sqlalchemy as sa


revision = '0009_rate_limits'
down_revision = '0008_trust'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_limit_windows',
    sa.Column('client', sa.String(length=120), nullable=False),
    sa.Column('window', sa.BigInteger(), nullable=False),
    sa.Column('admitted', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('client', 'window', name=op.f('pk_rate_limit_windows'))
    )


def downgrade() -> None:
    op.drop_table('rate_limit_windows')
