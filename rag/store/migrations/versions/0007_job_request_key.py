"""jobs.request_key: the client's Idempotency-Key (with its API key), unique, so a request retried
through another replica finds the job the first one created instead of running it twice

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("request_key", sa.String(200), nullable=True))
        batch.create_index("ix_jobs_request_key", ["request_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_request_key")
        batch.drop_column("request_key")
