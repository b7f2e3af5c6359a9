"""durable jobs: the request a job carries, the key that sent it, the process that runs it

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("payload", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
        batch.create_index("ix_jobs_status", ["status"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_status")
        batch.drop_column("owner")
        batch.drop_column("key_id")
        batch.drop_column("payload")
