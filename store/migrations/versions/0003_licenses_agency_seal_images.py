"""licenses, agency seal images

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('license_serials',
    sa.Column('type_code', sa.String(length=32), nullable=False),
    sa.Column('issuer_code', sa.String(length=32), nullable=False),
    sa.Column('next_serial', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('type_code', 'issuer_code', name=op.f('pk_license_serials'))
    )
    op.create_table('license_types',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('name_zh', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_license_types_agency_id_agencies')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_license_types'))
    )
    op.create_table('import_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('type_code', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('issued', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_import_jobs_agency_id_agencies')),
    sa.ForeignKeyConstraint(['type_code'], ['license_types.code'], name=op.f('fk_import_jobs_type_code_license_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs'))
    )
    op.create_table('licenses',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('type_code', sa.String(length=32), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('issuer_code', sa.String(length=32), nullable=False),
    sa.Column('serial', sa.String(length=40), nullable=False),
    sa.Column('holder_kind', sa.String(length=16), nullable=False),
    sa.Column('holder_index', sa.String(length=64), nullable=False),
    sa.Column('holder_name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=200), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('identifier', sa.String(length=160), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_licenses_agency_id_agencies')),
    sa.ForeignKeyConstraint(['type_code'], ['license_types.code'], name=op.f('fk_licenses_type_code_license_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licenses')),
    sa.UniqueConstraint('identifier', name=op.f('uq_licenses_identifier')),
    sa.UniqueConstraint('type_code', 'issuer_code', 'serial', name='uq_licenses_type_issuer_serial')
    )
    with op.batch_alter_table('licenses', schema=None) as batch_op:
        batch_op.create_index('ix_licenses_agency_type', ['agency_id', 'type_code'], unique=False)
        batch_op.create_index('ix_licenses_holder', ['holder_kind', 'holder_index'], unique=False)

    op.create_table('import_rejections',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['import_jobs.id'], name=op.f('fk_import_rejections_job_id_import_jobs')),
    sa.PrimaryKeyConstraint('job_id', 'row_number', name=op.f('pk_import_rejections'))
    )
    op.create_table('license_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('license_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_events_license_id_licenses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_events'))
    )
    with op.batch_alter_table('license_events', schema=None) as batch_op:
        batch_op.create_index('ix_license_events_license', ['license_id', 'id'], unique=False)

    op.create_table('license_requests',
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('request_key', sa.String(length=128), nullable=False),
    sa.Column('request_sha256', sa.String(length=64), nullable=False),
    sa.Column('license_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], name=op.f('fk_license_requests_agency_id_agencies')),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_requests_license_id_licenses')),
    sa.PrimaryKeyConstraint('agency_id', 'request_key', name=op.f('pk_license_requests'))
    )
    op.create_table('license_versions',
    sa.Column('license_id', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('identifier', sa.String(length=160), nullable=False),
    sa.Column('fields_ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
    sa.Column('pdf_size', sa.Integer(), nullable=False),
    sa.Column('seal_serial', sa.String(length=40), nullable=False),
    sa.Column('qr_token', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['license_id'], ['licenses.id'], name=op.f('fk_license_versions_license_id_licenses')),
    sa.ForeignKeyConstraint(['seal_serial'], ['certificates.serial'], name=op.f('fk_license_versions_seal_serial_certificates')),
    sa.PrimaryKeyConstraint('license_id', 'version', name=op.f('pk_license_versions')),
    sa.UniqueConstraint('identifier', name=op.f('uq_license_versions_identifier')),
    sa.UniqueConstraint('pdf_sha256', name=op.f('uq_license_versions_pdf_sha256'))
    )
    with op.batch_alter_table('agencies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seal_image_sha256', sa.String(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('agencies', schema=None) as batch_op:
        batch_op.drop_column('seal_image_sha256')

    op.drop_table('license_versions')
    op.drop_table('license_requests')
    with op.batch_alter_table('license_events', schema=None) as batch_op:
        batch_op.drop_index('ix_license_events_license')

    op.drop_table('license_events')
    op.drop_table('import_rejections')
    with op.batch_alter_table('licenses', schema=None) as batch_op:
        batch_op.drop_index('ix_licenses_holder')
        batch_op.drop_index('ix_licenses_agency_type')

    op.drop_table('licenses')
    op.drop_table('import_jobs')
    op.drop_table('license_types')
    op.drop_table('license_serials')
