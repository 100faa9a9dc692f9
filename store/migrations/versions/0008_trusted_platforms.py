"""mutual recognition: trusted platforms (imported trust bundles)

Revision ID: 0008_trust
Revises: 0007_grants
"""

from alembic import op
import sqlalchemy as sa


revision = '0008_trust'
down_revision = '0007_grants'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trusted_platforms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('platform_id', sa.String(length=64), nullable=False),
    sa.Column('base_url', sa.String(length=300), nullable=True),
    sa.Column('bundle', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trusted_platforms')),
    sa.UniqueConstraint('name', name=op.f('uq_trusted_platforms_name')),
    sa.UniqueConstraint('platform_id', name=op.f('uq_trusted_platforms_platform_id'))
    )


def downgrade() -> None:
    op.drop_table('trusted_platforms')
