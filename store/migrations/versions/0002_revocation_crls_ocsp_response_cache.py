"""revocation, CRLs, OCSP response cache

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('crls',
    sa.Column('issuer', sa.String(length=32), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entries', sa.BigInteger(), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['issuer'], ['authorities.name'], name=op.f('fk_crls_issuer_authorities')),
    sa.PrimaryKeyConstraint('issuer', name=op.f('pk_crls'))
    )
    op.create_table('ocsp_responses',
    sa.Column('issuer', sa.String(length=32), nullable=False),
    sa.Column('serial', sa.String(length=40), nullable=False),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['issuer'], ['authorities.name'], name=op.f('fk_ocsp_responses_issuer_authorities')),
    sa.PrimaryKeyConstraint('issuer', 'serial', name=op.f('pk_ocsp_responses'))
    )
    with op.batch_alter_table('authorities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='valid', nullable=False))
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revocation_reason', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('revocation_entry', sa.LargeBinary(), nullable=True))

    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('invalidity_date', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revocation_entry', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('replaces', sa.String(length=40), nullable=True))
        batch_op.create_index('ix_certificates_issuer_status', ['issuer', 'status'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_certificates_replaces_certificates'), 'certificates', ['replaces'], ['serial'])



def downgrade() -> None:
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_certificates_replaces_certificates'), type_='foreignkey')
        batch_op.drop_index('ix_certificates_issuer_status')
        batch_op.drop_column('replaces')
        batch_op.drop_column('revocation_entry')
        batch_op.drop_column('invalidity_date')

    with op.batch_alter_table('authorities', schema=None) as batch_op:
        batch_op.drop_column('revocation_entry')
        batch_op.drop_column('revocation_reason')
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('status')

    op.drop_table('ocsp_responses')
    op.drop_table('crls')
