"""certificate login: challenges and login-token keys

Revision ID: 0006_login
Revises: 0005_audit
"""

from alembic import op
import sqlalchemy as sa


revision = '0006_login'
down_revision = '0005_audit'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_challenges',
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('audience', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('nonce', name=op.f('pk_login_challenges'))
    )
    with op.batch_alter_table('login_challenges', schema=None) as batch_op:
        batch_op.create_index('ix_login_challenges_expires', ['expires_at'], unique=False)
    op.create_table('login_keys',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_login_keys')),
    sa.UniqueConstraint('label', name=op.f('uq_login_keys_label'))
    )


def downgrade() -> None:
    op.drop_table('login_keys')
    with op.batch_alter_table('login_challenges', schema=None) as batch_op:
        batch_op.drop_index('ix_login_challenges_expires')
    op.drop_table('login_challenges')
