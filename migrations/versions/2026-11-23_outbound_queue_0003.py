"""outbound queue, upstream SMTP per account, sender identities

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:40:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casella.models.base


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('outbound_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('mail_from', sa.String(length=998), nullable=False),
    sa.Column('rcpt_tos', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', casella.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', casella.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('smtp_message_id', sa.String(length=998), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_outbound_message_account_id_account')),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_outbound_message_message_id_message')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_message'))
    )
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_message_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbound_message_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbound_message_message_id'), ['message_id'], unique=False)

    op.create_table('account_smtp',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('security', sa.String(length=16), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=True),
    sa.Column('password_encrypted', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_account_smtp_account_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_account_smtp'))
    )
    op.create_table('sender_identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_sender_identity_account_id_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_sender_identity_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sender_identity')),
    sa.UniqueConstraint('user_id', 'address', name=op.f('uq_sender_identity_user_id_address'))
    )
    with op.batch_alter_table('sender_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sender_identity_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sender_identity_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_sender_identity_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sender_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sender_identity_user_id'))
        batch_op.drop_index(batch_op.f('ix_sender_identity_address'))
        batch_op.drop_index(batch_op.f('ix_sender_identity_account_id'))
    op.drop_table('sender_identity')
    op.drop_table('account_smtp')
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_message_message_id'))
        batch_op.drop_index(batch_op.f('ix_outbound_message_account_id'))
        batch_op.drop_index('ix_outbound_message_due')
    op.drop_table('outbound_message')
