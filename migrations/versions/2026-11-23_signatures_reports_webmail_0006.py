"""Signatures, delivery reports (DSN/MDN), IMAP Sent copies; webmail sessions, read log,
notes, drafts, saved views, remote-content permissions, audit log

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:30:03.559238
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casella.models.base


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)

    op.create_table('login_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=120), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempt'))
    )
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.create_index('ix_login_attempt_ip_at', ['ip', 'at'], unique=False)
        batch_op.create_index('ix_login_attempt_user_at', ['username', 'at'], unique=False)

    op.create_table('remote_content_allow',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_remote_content_allow_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'sender', name=op.f('pk_remote_content_allow'))
    )
    op.create_table('saved_view',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('query', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_saved_view_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_view')),
    sa.UniqueConstraint('user_id', 'name', name=op.f('uq_saved_view_user_id_name'))
    )
    with op.batch_alter_table('saved_view', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_saved_view_user_id'), ['user_id'], unique=False)

    op.create_table('web_session',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_web_session_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_web_session'))
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_user_id'), ['user_id'], unique=False)

    op.create_table('signature',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('updated_at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('account_id IS NOT NULL OR user_id IS NOT NULL', name=op.f('ck_signature_has_owner')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_signature_account_id_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_signature_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signature')),
    sa.UniqueConstraint('name', name=op.f('uq_signature_name'))
    )
    with op.batch_alter_table('signature', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signature_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_signature_user_id'), ['user_id'], unique=False)

    op.create_table('draft',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('source_message_id', sa.Integer(), nullable=True),
    sa.Column('to', sa.Text(), nullable=False),
    sa.Column('cc', sa.Text(), nullable=False),
    sa.Column('bcc', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('request_receipt', sa.Boolean(), nullable=False),
    sa.Column('attachments', sa.JSON(), nullable=False),
    sa.Column('updated_at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_draft_account_id_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_message_id'], ['message.id'], name=op.f('fk_draft_source_message_id_message'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_draft_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_draft'))
    )
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_draft_user_id'), ['user_id'], unique=False)

    op.create_table('message_note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('mentions', sa.JSON(), nullable=False),
    sa.Column('created_at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_note_message_id_message'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_message_note_user_id_app_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_note'))
    )
    with op.batch_alter_table('message_note', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_note_message_id'), ['message_id'], unique=False)

    op.create_table('message_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('refers_to_msgid', sa.String(length=998), nullable=True),
    sa.Column('refers_to_id', sa.Integer(), nullable=True),
    sa.Column('recipient', sa.String(length=998), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('diagnostic', sa.Text(), nullable=True),
    sa.Column('at', casella.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_report_message_id_message'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['refers_to_id'], ['message.id'], name=op.f('fk_message_report_refers_to_id_message'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_report'))
    )
    with op.batch_alter_table('message_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_report_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_report_refers_to_id'), ['refers_to_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_report_refers_to_msgid'), ['refers_to_msgid'], unique=False)

    op.create_table('message_seen',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_message_seen_message_id_message'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_message_seen_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'message_id', name=op.f('pk_message_seen'))
    )
    with op.batch_alter_table('message_seen', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_seen_message_id'), ['message_id'], unique=False)

    op.create_table('read_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('at', casella.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_read_log_message_id_message'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_read_log_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_read_log'))
    )
    with op.batch_alter_table('read_log', schema=None) as batch_op:
        batch_op.create_index('ix_read_log_message_at', ['message_id', 'at'], unique=False)
        batch_op.create_index('ix_read_log_user_at', ['user_id', 'at'], unique=False)

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index('ix_message_folder_date', ['account_id', 'folder', 'date', 'id'], unique=False)
        batch_op.create_index('ix_message_date_id', ['date', 'id'], unique=False)

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto_signature', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('imap_append_sent', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('job_title', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('phone', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('locale', sa.String(length=8), server_default='it', nullable=False))

    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('imap_appended_at', casella.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('imap_append_error', sa.Text(), nullable=True))




def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_date_id')
        batch_op.drop_index('ix_message_folder_date')

    
    with op.batch_alter_table('outbound_message', schema=None) as batch_op:
        batch_op.drop_column('imap_append_error')
        batch_op.drop_column('imap_appended_at')

    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.drop_column('locale')
        batch_op.drop_column('phone')
        batch_op.drop_column('job_title')

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('imap_append_sent')
        batch_op.drop_column('auto_signature')

    with op.batch_alter_table('read_log', schema=None) as batch_op:
        batch_op.drop_index('ix_read_log_user_at')
        batch_op.drop_index('ix_read_log_message_at')

    op.drop_table('read_log')
    with op.batch_alter_table('message_seen', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_seen_message_id'))

    op.drop_table('message_seen')
    with op.batch_alter_table('message_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_report_refers_to_msgid'))
        batch_op.drop_index(batch_op.f('ix_message_report_refers_to_id'))
        batch_op.drop_index(batch_op.f('ix_message_report_message_id'))

    op.drop_table('message_report')
    with op.batch_alter_table('message_note', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_note_message_id'))

    op.drop_table('message_note')
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_draft_user_id'))

    op.drop_table('draft')
    with op.batch_alter_table('signature', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signature_user_id'))
        batch_op.drop_index(batch_op.f('ix_signature_account_id'))

    op.drop_table('signature')
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_user_id'))

    op.drop_table('web_session')
    with op.batch_alter_table('saved_view', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_saved_view_user_id'))

    op.drop_table('saved_view')
    op.drop_table('remote_content_allow')
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_login_attempt_user_at')
        batch_op.drop_index('ix_login_attempt_ip_at')

    op.drop_table('login_attempt')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')

