"""digest delivery claims: a row is claimed before it is sent

Revision ID: 7d3c51e0a8b4
Revises: 5e1f0c2a9d47
Create Date: 2026-11-27 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import speakup.db


# revision identifiers, used by Alembic.
revision = '7d3c51e0a8b4'
down_revision = '5e1f0c2a9d47'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('digest_delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', speakup.db.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('digest_delivery', schema=None) as batch_op:
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_by')
