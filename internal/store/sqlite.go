package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SQLite is the embedded Store: one database file in WAL mode.
//
// Writes go through a pool of exactly one connection whose transactions
// begin IMMEDIATE, so writers queue in Go instead of spinning on
// SQLITE_BUSY, and a read-modify-write inside a transaction cannot be
// invalidated by another writer. Reads use a separate pool of read-only
// connections, which WAL lets run alongside the writer.
type SQLite struct {
	w *sql.DB // the single writer connection
	r *sql.DB // read-only connections
}

var _ Store = (*SQLite)(nil)

// migrations are applied in order, each in its own transaction; the
// database's user_version counts those already applied. Append only:
// never edit or reorder an entry that has shipped.
var migrations = []string{
	`
CREATE TABLE resources (
	key       TEXT PRIMARY KEY, -- lower-cased id
	id        TEXT NOT NULL,    -- id as last put
	type      TEXT NOT NULL,
	type_key  TEXT NOT NULL,
	scope     TEXT NOT NULL,
	scope_key TEXT NOT NULL,
	body      BLOB,
	version   INTEGER NOT NULL,
	created   INTEGER NOT NULL, -- unix nanoseconds
	updated   INTEGER NOT NULL
) STRICT;
CREATE INDEX resources_scope ON resources (scope_key, key);
CREATE INDEX resources_type ON resources (type_key, key);

CREATE TABLE operations (
	id          TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	resource_id TEXT NOT NULL,
	status      TEXT NOT NULL,
	error_code  TEXT NOT NULL,
	error_msg   TEXT NOT NULL,
	started     INTEGER, -- unix nanoseconds, NULL for the zero time
	ended       INTEGER
) STRICT;
CREATE INDEX operations_status ON operations (status, started);

CREATE TABLE principals (
	object_key TEXT PRIMARY KEY, -- lower-cased object id
	object_id  TEXT NOT NULL,
	client_key TEXT UNIQUE,      -- lower-cased client id, NULL when empty
	client_id  TEXT NOT NULL,
	body       TEXT NOT NULL     -- JSON principalBody
) STRICT;

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
`,
	// The pool controller looks up the operations of one resource.
	`
ALTER TABLE operations ADD COLUMN resource_key TEXT NOT NULL DEFAULT '';
UPDATE operations SET resource_key = lower(resource_id);
CREATE INDEX operations_resource ON operations (resource_key, status, started);
`,
}

// OpenSQLite opens the database at path, creating it (mode 0600) and its
// directory (mode 0700) if missing, and brings the schema up to date.
func OpenSQLite(ctx context.Context, path string) (_ *SQLite, retErr error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := createFile(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	w, err := sql.Open("sqlite", dsn(path, url.Values{"_txlock": {"immediate"}}))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	s := &SQLite{w: w}
	defer func() {
		if retErr != nil {
			s.Close()
		}
	}()
	// Migrate before the readers open: the writer's first connection turns
	// on WAL, which the read-only connections could not.
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	s.r, err = sql.Open("sqlite", dsn(path, url.Values{"_query_only": {"1"}}))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	n := max(4, runtime.NumCPU())
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	if err := s.r.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// dsn returns the data source name for path with the pragmas every
// connection needs. synchronous=FULL makes each commit durable before it
// returns, as the Store contract requires.
func dsn(path string, q url.Values) string {
	q["_pragma"] = []string{
		"busy_timeout(5000)",
		"foreign_keys(1)",
		"journal_mode(WAL)",
		"synchronous(FULL)",
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// createFile creates the database file before SQLite does: SQLite would
// create it world-readable, and it gives the -wal and -shm files the mode
// of the database file.
func createFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Make the new directory entry durable, as SQLite does for its WAL.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *SQLite) migrate(ctx context.Context) error {
	for {
		done, err := s.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the first pending migration and reports whether none
// was left. It reads user_version inside the write transaction so that two
// processes opening the same file cannot both apply a migration.
func (s *SQLite) migrateOne(ctx context.Context) (done bool, err error) {
	err = s.write(ctx, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return err
		}
		switch {
		case v > len(migrations):
			return fmt.Errorf("schema version %d is newer than this binary's %d", v, len(migrations))
		case v == len(migrations):
			done = true
			return nil
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		// PRAGMA takes no parameters; v+1 is an integer we computed.
		_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1))
		return err
	})
	return done, err
}

// write runs fn in a transaction on the writer connection and commits if
// fn returns nil.
func (s *SQLite) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Times are stored as unix nanoseconds, which sort as times do and
// round-trip exactly; the zero time is stored as NULL.
func nanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// fold maps an id to its key column; ARM ids compare case-insensitively.
func fold(id string) string { return strings.ToLower(id) }

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

const resourceColumns = "id, type, scope, body, version, created, updated"

func scanResource(row scanner) (*Resource, error) {
	var (
		r                Resource
		created, updated sql.NullInt64
	)
	if err := row.Scan(&r.ID, &r.Type, &r.Scope, &r.Body, &r.Version, &created, &updated); err != nil {
		return nil, err
	}
	r.Created, r.Updated = fromNanos(created), fromNanos(updated)
	return &r, nil
}

func (s *SQLite) GetResource(ctx context.Context, id string) (*Resource, error) {
	row := s.r.QueryRowContext(ctx, "SELECT "+resourceColumns+" FROM resources WHERE key = ?", fold(id))
	r, err := scanResource(row)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get resource %s: %w", id, err)
	}
	return r, nil
}

func (s *SQLite) PutResource(ctx context.Context, r *Resource) error {
	if r.ID == "" {
		return errors.New("put resource: empty id")
	}
	var created, now time.Time
	k := fold(r.ID)
	err := s.write(ctx, func(tx *sql.Tx) error {
		// Read the clock holding the write lock, so that Updated follows
		// commit order.
		now = time.Now().UTC()
		created = now
		if r.Version == 0 {
			res, err := tx.ExecContext(ctx, `
INSERT INTO resources (key, id, type, type_key, scope, scope_key, body, version, created, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
ON CONFLICT (key) DO NOTHING`,
				k, r.ID, r.Type, fold(r.Type), r.Scope, fold(r.Scope), r.Body, nanos(now), nanos(now))
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return ErrExists
			}
			return nil
		}
		var c sql.NullInt64
		err := tx.QueryRowContext(ctx, `
UPDATE resources
SET id = ?, type = ?, type_key = ?, scope = ?, scope_key = ?, body = ?, version = version + 1, updated = ?
WHERE key = ? AND version = ?
RETURNING created`,
			r.ID, r.Type, fold(r.Type), r.Scope, fold(r.Scope), r.Body, nanos(now), k, r.Version).Scan(&c)
		if errors.Is(err, sql.ErrNoRows) {
			return missingOrConflict(ctx, tx, k)
		}
		if err != nil {
			return err
		}
		created = fromNanos(c)
		return nil
	})
	if err != nil {
		return fmt.Errorf("put resource %s: %w", r.ID, err)
	}
	r.Version++
	r.Created, r.Updated = created, now
	return nil
}

// missingOrConflict explains why a write conditioned on a version matched
// no row.
func missingOrConflict(ctx context.Context, tx *sql.Tx, k string) error {
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM resources WHERE key = ?", k).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	}
	return ErrConflict
}

func (s *SQLite) DeleteResource(ctx context.Context, id string, version int64) error {
	k := fold(id)
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM resources WHERE key = ?1 AND (?2 = 0 OR version = ?2)", k, version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return missingOrConflict(ctx, tx, k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete resource %s: %w", id, err)
	}
	return nil
}

func (s *SQLite) ListResources(ctx context.Context, opts ListOptions) (ListResult, error) {
	var (
		where []string
		args  []any
	)
	if opts.Type != "" {
		where = append(where, "type_key = ?")
		args = append(args, fold(opts.Type))
	}
	if scope := fold(opts.Scope); scope != "" {
		if opts.Recursive {
			// A range rather than LIKE, which would treat the '_' and '%'
			// that resource group names may hold as wildcards. Every key
			// below scope starts with scope+"/", and '0' is the byte after
			// '/', so the range holds exactly those keys; it also uses the
			// index.
			where = append(where, "(scope_key = ? OR (scope_key >= ? AND scope_key < ?))")
			args = append(args, scope, scope+"/", scope+"0")
		} else {
			where = append(where, "scope_key = ?")
			args = append(args, scope)
		}
	}
	if opts.After != "" {
		where = append(where, "key > ?")
		args = append(args, opts.After)
	}
	q := "SELECT " + resourceColumns + " FROM resources"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY key"
	if opts.Limit > 0 {
		// One more than asked tells whether another page follows.
		q += " LIMIT ?"
		args = append(args, opts.Limit+1)
	}

	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return ListResult{}, fmt.Errorf("list resources: %w", err)
	}
	defer rows.Close()
	var res ListResult
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return ListResult{}, fmt.Errorf("list resources: %w", err)
		}
		res.Items = append(res.Items, *r)
	}
	if err := rows.Err(); err != nil {
		return ListResult{}, fmt.Errorf("list resources: %w", err)
	}
	if opts.Limit > 0 && len(res.Items) > opts.Limit {
		res.Items = res.Items[:opts.Limit]
		res.Next = fold(res.Items[opts.Limit-1].ID)
	}
	return res, nil
}

func (s *SQLite) PutOperation(ctx context.Context, op *Operation) error {
	_, err := s.w.ExecContext(ctx, `
INSERT INTO operations (id, kind, resource_id, resource_key, status, error_code, error_msg, started, ended)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
	kind = excluded.kind, resource_id = excluded.resource_id, resource_key = excluded.resource_key, status = excluded.status,
	error_code = excluded.error_code, error_msg = excluded.error_msg,
	started = excluded.started, ended = excluded.ended`,
		op.ID, op.Kind, op.ResourceID, fold(op.ResourceID), op.Status, op.ErrorCode, op.ErrorMsg, nanos(op.Started), nanos(op.Ended))
	if err != nil {
		return fmt.Errorf("put operation %s: %w", op.ID, err)
	}
	return nil
}

const operationColumns = "id, kind, resource_id, status, error_code, error_msg, started, ended"

func scanOperation(row scanner) (Operation, error) {
	var (
		op           Operation
		started, end sql.NullInt64
	)
	err := row.Scan(&op.ID, &op.Kind, &op.ResourceID, &op.Status, &op.ErrorCode, &op.ErrorMsg, &started, &end)
	op.Started, op.Ended = fromNanos(started), fromNanos(end)
	return op, err
}

func (s *SQLite) GetOperation(ctx context.Context, id string) (*Operation, error) {
	op, err := scanOperation(s.r.QueryRowContext(ctx, "SELECT "+operationColumns+" FROM operations WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get operation %s: %w", id, err)
	}
	return &op, nil
}

func (s *SQLite) ListOperations(ctx context.Context, status, resourceID string) ([]Operation, error) {
	query, args := "SELECT "+operationColumns+" FROM operations WHERE status = ?", []any{status}
	if resourceID != "" {
		query, args = query+" AND resource_key = ?", append(args, fold(resourceID))
	}
	rows, err := s.r.QueryContext(ctx, query+" ORDER BY started, id", args...)
	if err != nil {
		return nil, fmt.Errorf("list operations %s: %w", status, err)
	}
	defer rows.Close()
	var ops []Operation
	for rows.Next() {
		op, err := scanOperation(rows)
		if err != nil {
			return nil, fmt.Errorf("list operations %s: %w", status, err)
		}
		ops = append(ops, op)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list operations %s: %w", status, err)
	}
	return ops, nil
}

// principalBody is the stored JSON of a principal's remaining fields. It
// has its own tags so that renaming a Go field cannot change what is on
// disk.
type principalBody struct {
	DisplayName string       `json:"displayName,omitempty"`
	Kind        string       `json:"kind,omitempty"`
	Secrets     []secretBody `json:"secrets,omitempty"`
	Created     time.Time    `json:"created"`
}

type secretBody struct {
	ID      string    `json:"id"`
	Hash    string    `json:"hash"`
	Hint    string    `json:"hint,omitempty"`
	Expires time.Time `json:"expires"`
}

// PutPrincipal creates or replaces the principal with p.ObjectID. Object
// and client ids compare case-insensitively, as the GUIDs Entra issues do.
// A client id that another principal holds is ErrExists.
func (s *SQLite) PutPrincipal(ctx context.Context, p *Principal) error {
	if p.ObjectID == "" {
		return errors.New("put principal: empty object id")
	}
	b := principalBody{DisplayName: p.DisplayName, Kind: p.Kind, Created: p.Created}
	for _, sec := range p.Secrets {
		b.Secrets = append(b.Secrets, secretBody(sec))
	}
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("put principal %s: %w", p.ObjectID, err)
	}
	objectKey := fold(p.ObjectID)
	clientKey := sql.NullString{String: fold(p.ClientID), Valid: p.ClientID != ""}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var other string
		err := tx.QueryRowContext(ctx,
			"SELECT object_id FROM principals WHERE client_key = ? AND object_key <> ?",
			clientKey, objectKey).Scan(&other)
		switch {
		case err == nil:
			return fmt.Errorf("client id %s belongs to %s: %w", p.ClientID, other, ErrExists)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `
INSERT INTO principals (object_key, object_id, client_key, client_id, body)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (object_key) DO UPDATE SET
	object_id = excluded.object_id, client_key = excluded.client_key,
	client_id = excluded.client_id, body = excluded.body`,
			objectKey, p.ObjectID, clientKey, p.ClientID, string(body))
		return err
	})
	if err != nil {
		return fmt.Errorf("put principal %s: %w", p.ObjectID, err)
	}
	return nil
}

func (s *SQLite) GetPrincipal(ctx context.Context, objectID string) (*Principal, error) {
	p, err := s.getPrincipal(ctx, "object_key", objectID)
	if err != nil {
		return nil, fmt.Errorf("get principal %s: %w", objectID, err)
	}
	return p, nil
}

func (s *SQLite) GetPrincipalByClientID(ctx context.Context, clientID string) (*Principal, error) {
	p, err := s.getPrincipal(ctx, "client_key", clientID)
	if err != nil {
		return nil, fmt.Errorf("get principal by client id %s: %w", clientID, err)
	}
	return p, nil
}

// ListPrincipals returns every principal, ordered by object id.
func (s *SQLite) ListPrincipals(ctx context.Context) ([]Principal, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT object_id, client_id, body FROM principals ORDER BY object_key")
	if err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	defer rows.Close()
	var out []Principal
	for rows.Next() {
		var p Principal
		var body string
		if err := rows.Scan(&p.ObjectID, &p.ClientID, &body); err != nil {
			return nil, fmt.Errorf("list principals: %w", err)
		}
		if err := p.decodeBody(body); err != nil {
			return nil, fmt.Errorf("list principals: %s: %w", p.ObjectID, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	return out, nil
}

// DeletePrincipal deletes the principal with the object id; ErrNotFound
// when there is none.
func (s *SQLite) DeletePrincipal(ctx context.Context, objectID string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM principals WHERE object_key = ?", fold(objectID))
		if err != nil {
			return fmt.Errorf("delete principal %s: %w", objectID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("delete principal %s: %w", objectID, ErrNotFound)
		}
		return nil
	})
}

func (p *Principal) decodeBody(body string) error {
	var b principalBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		return err
	}
	p.DisplayName, p.Kind, p.Created = b.DisplayName, b.Kind, b.Created
	for _, sec := range b.Secrets {
		p.Secrets = append(p.Secrets, Secret(sec))
	}
	return nil
}

// getPrincipal looks a principal up by one of its key columns; col is
// always a constant.
func (s *SQLite) getPrincipal(ctx context.Context, col, id string) (*Principal, error) {
	var (
		p    Principal
		body string
	)
	err := s.r.QueryRowContext(ctx,
		"SELECT object_id, client_id, body FROM principals WHERE "+col+" = ?", fold(id)).
		Scan(&p.ObjectID, &p.ClientID, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if err := p.decodeBody(body); err != nil {
		return nil, err
	}
	return &p, nil
}

func (s *SQLite) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", key, err)
	}
	return v, nil
}

func (s *SQLite) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	var stored string
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			"INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", key, value)
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&stored)
	})
	if err != nil {
		return "", fmt.Errorf("set setting %s: %w", key, err)
	}
	return stored, nil
}

// Ping checks both the read and the write connections.
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// Close closes the database. The last connection to close checkpoints the
// WAL into the database file.
func (s *SQLite) Close() error {
	var err error
	if s.r != nil {
		err = s.r.Close()
	}
	return errors.Join(err, s.w.Close())
}
