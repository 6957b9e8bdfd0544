"""message pec: PEC kind, receipt link, daticert and signature of a stored message

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 13:00:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casella.models.base


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('message_pec',
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('receipt_form', sa.String(length=16), nullable=True),
    sa.Column('refers_to_msgid', sa.String(length=998), nullable=True),
    sa.Column('refers_to_id', sa.Integer(), nullable=True),
    sa.Column('sender', sa.String(length=998), nullable=True),
    sa.Column('at', casella.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('daticert', sa.JSON(), nullable=True),
    sa.Column('signature', sa.JSON(), nullable=True),
    sa.Column('problems', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_pec_message_id_message'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['refers_to_id'], ['message.id'], name=op.f('fk_message_pec_refers_to_id_message'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_message_pec'))
    )
    with op.batch_alter_table('message_pec', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_pec_refers_to_id'), ['refers_to_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_pec_refers_to_msgid'), ['refers_to_msgid'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message_pec', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_pec_refers_to_msgid'))
        batch_op.drop_index(batch_op.f('ix_message_pec_refers_to_id'))

    op.drop_table('message_pec')
