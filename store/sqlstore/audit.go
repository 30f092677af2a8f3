package sqlstore

import (
	"context"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/twofold-idp/twofold/store"
)

// AppendAudit records one event; Detail defaults to an empty JSON object.
// On PostgreSQL, outside a transaction, events appended at the same time
// are committed together (batch.go).
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	if e.Detail == "" {
		e.Detail = "{}"
	}
	if _, inTx := ctx.Value(txKey{}).(*sqlx.Tx); s.dialect == "postgres" && !inTx {
		return s.audits.add(ctx, e)
	}
	return s.insertAuditEvent(ctx, e)
}

func (s *Store) insertAuditEvent(ctx context.Context, e store.AuditEvent) error {
	_, err := s.exec(ctx, `INSERT INTO audit_events (at, type, user_id, actor_id, client_id, ip, user_agent, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Time.UTC(), e.Type, e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent, e.Detail)
	return wrap(err, "append audit event")
}

// ListAudit returns events newest first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	query := `SELECT id, at, type, user_id, actor_id, client_id, ip, user_agent, detail FROM audit_events`
	var where []string
	var args []any
	if f.UserID != "" {
		where, args = append(where, `user_id = ?`), append(args, f.UserID)
	}
	switch {
	case strings.HasSuffix(f.Type, "."):
		// A prefix, compared as text (LIKE would read the "_" in
		// type names as a wildcard).
		where, args = append(where, `substr(type, 1, ?) = ?`), append(args, len(f.Type), f.Type)
	case f.Type != "":
		where, args = append(where, `type = ?`), append(args, f.Type)
	}
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY at DESC, id DESC`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
		if f.Offset > 0 {
			query += ` OFFSET ?`
			args = append(args, f.Offset)
		}
	}
	events := []store.AuditEvent{}
	err := s.sel(ctx, &events, query, args...)
	return events, wrap(err, "list audit events")
}
