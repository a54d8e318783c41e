"""custody: consent to identity for later readers; enrolment codes; per-client sign-in throttle

Revision ID: a81c4e7d2f10
Revises: 7d3c51e0a8b4
Create Date: 2026-12-02 17:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
import speakup.db


# revision identifiers, used by Alembic.
revision = 'a81c4e7d2f10'
down_revision = '7d3c51e0a8b4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('concern_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identity_later_consent', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enrolment_pending', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('enrolment_code_hash', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('enrolment_expires_at', speakup.db.UTCDateTime(timezone=True), nullable=True))
    op.create_table('sign_in_throttle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('client_hash', sa.LargeBinary(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('strikes', sa.Integer(), nullable=False),
    sa.Column('blocked_until', speakup.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', speakup.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['staff_user.id'], name=op.f('fk_sign_in_throttle_user_id_staff_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_throttle')),
    sa.UniqueConstraint('user_id', 'client_hash', name='user_client')
    )


def downgrade():
    op.drop_table('sign_in_throttle')
    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.drop_column('enrolment_expires_at')
        batch_op.drop_column('enrolment_code_hash')
        batch_op.drop_column('enrolment_pending')
    with op.batch_alter_table('concern_case', schema=None) as batch_op:
        batch_op.drop_column('identity_later_consent')
