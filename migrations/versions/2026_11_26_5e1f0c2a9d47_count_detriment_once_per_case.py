"""count detriment once per case

Revision ID: 5e1f0c2a9d47
Revises: ceddc6b1ae02
Create Date: 2026-11-26 10:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e1f0c2a9d47'
down_revision = 'ceddc6b1ae02'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('concern_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('counted_detriment', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('concern_case', schema=None) as batch_op:
        batch_op.drop_column('counted_detriment')
