"""authorized use: license grants and their accesses

Revision ID: 0007_grants
Revises: 0006_login
"""

from alembic import op
import sqlalchemy as sa


revision = '0007_grants'
down_revision = '0006_login'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('license_grants',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('license_id', sa.String(length=32), nullable=False),
    sa.Column('holder_kind', sa.String(length=16), nullable=False),
    sa.Column('holder_index', sa.String(length=64), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_license_grants_agency_id_agencies')),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_grants_license_id_licenses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_grants'))
    )
    with op.batch_alter_table('license_grants', schema=None) as batch_op:
        batch_op.create_index('ix_license_grants_agency', ['agency_id', 'valid_until'], unique=False)
        batch_op.create_index('ix_license_grants_holder', ['holder_kind', 'holder_index'], unique=False)
    op.create_table('license_grant_accesses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('grant_id', sa.String(length=32), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.Column('what', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'],
                            name=op.f('fk_license_grant_accesses_agency_id_agencies')),
    sa.ForeignKeyConstraint(['grant_id'], ['license_grants.id'],
                            name=op.f('fk_license_grant_accesses_grant_id_license_grants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_grant_accesses'))
    )
    with op.batch_alter_table('license_grant_accesses', schema=None) as batch_op:
        batch_op.create_index('ix_license_grant_accesses_grant', ['grant_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('license_grant_accesses', schema=None) as batch_op:
        batch_op.drop_index('ix_license_grant_accesses_grant')
    op.drop_table('license_grant_accesses')
    with op.batch_alter_table('license_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_license_grants_holder')
        batch_op.drop_index('ix_license_grants_agency')
    op.drop_table('license_grants')
