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
    # A case whose detriment report already wrote a fact is counted: the audit log says which.
    concern_case = sa.table('concern_case', sa.column('id', sa.Integer), sa.column('counted_detriment', sa.Boolean))
    audit_event = sa.table('audit_event', sa.column('case_id', sa.Integer), sa.column('action', sa.String))
    op.execute(
        concern_case.update()
        .where(
            concern_case.c.id.in_(
                sa.select(audit_event.c.case_id).where(audit_event.c.action == 'case.detriment_reported')
            )
        )
        .values(counted_detriment=sa.true())
    )


def downgrade():
    with op.batch_alter_table('concern_case', schema=None) as batch_op:
        batch_op.drop_column('counted_detriment')
